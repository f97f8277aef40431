"""Realistic generated profiles: Faker names from several locales (apostrophes, non-ASCII), plus-addressed
emails, D365-style externalIds on a share of rows, a few opt-outs, timestamps spread over two years.

Names come from small Faker-built pools combined at random, so a million rows seed in seconds, not minutes.
"""

from __future__ import annotations

import functools
import json
import random
import time
import unicodedata
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from faker import Faker

from crmbridge.emulators.campaign.storage import Storage

__all__ = ["DEFAULT_LOCALES", "seed_profiles"]

DEFAULT_LOCALES = ("en_US", "en_GB", "fr_FR", "de_DE", "es_ES", "it_IT", "ja_JP", "nl_NL")
_APOSTROPHE_NAMES = ("O'Brien", "D'Angelo", "N'Diaye", "O'Connor", "L'Hôte", "D'Arcy")
_DOMAINS = ("example.com", "example.org", "example.net", "mail.example.com", "corp.example.org")
_LANGUAGES = {"en_US": "en_us", "en_GB": "en_gb", "fr_FR": "fr_fr", "de_DE": "de_de", "es_ES": "es_es",
              "it_IT": "it_it", "ja_JP": "ja_jp", "nl_NL": "nl_nl"}  # fmt: skip
_COLUMNS = (
    "created", "lastModified", "email", "firstName", "lastName", "gender", "emailFormat", "preferredLanguage",
    "externalId", "birthDate", "blackListEmail", "blackListEmailLastModified", "blackListAllLastModified", "location",
)  # fmt: skip
_POOL = 120
_CHUNK = 20_000


@functools.cache
def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return "".join(ch for ch in folded if ch.isalnum())


def _pools(locales: Sequence[str], seed: int) -> list[tuple[str, list[str], list[str], list[str]]]:
    pools = []
    for index, locale in enumerate(locales):
        fake = Faker(locale)
        fake.seed_instance(seed + index)
        firsts = [fake.first_name() for _ in range(_POOL)]
        lasts = [fake.last_name() for _ in range(_POOL)] + list(_APOSTROPHE_NAMES)
        # Location items are stored as JSON text: build each one once, not once per row.
        places = [json.dumps({"city": fake.city(), "countryCode": locale[-2:]}, ensure_ascii=False) for _ in range(20)]
        pools.append((locale, firsts, lasts, places))
    return pools


def _stamp(epoch_ms: int) -> str:
    """format_datetime for an epoch in ms, without building datetimes (the seed makes millions)."""
    seconds, millis = divmod(epoch_ms, 1000)
    return f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(seconds))}.{millis:03d}Z"


def _rows(count: int, start_number: int, seed: int, locales: Sequence[str], external_share: float,
          now: datetime) -> Iterator[tuple[Any, ...]]:  # fmt: skip
    rng = random.Random(seed)
    random_value, choice = rng.random, rng.choice
    pools = _pools(locales, seed)
    now_ms = int(now.timestamp() * 1000)
    span_ms = 2 * 365 * 86400 * 1000
    for number in range(start_number, start_number + count):
        locale, firsts, lasts, places = choice(pools)
        first, last = choice(firsts), choice(lasts)
        local = f"{_ascii(first) or 'user'}.{_ascii(last) or 'name'}{number}"
        if random_value() < 0.1:
            local += "+news"  # plus-addressing: clients must percent-encode "+" (§3.5)
        created_ms = now_ms - int(random_value() * span_ms)
        stamp = _stamp(created_ms + int((now_ms - created_ms) * random_value()))
        opted_out = random_value() < 0.03
        external = str(uuid.UUID(int=rng.getrandbits(128), version=4)) if random_value() < external_share else ""
        born = (
            f"{1940 + int(random_value() * 67)}-{1 + int(random_value() * 12):02d}-{1 + int(random_value() * 28):02d}"
        )
        yield (
            _stamp(created_ms), stamp, f"{local}@{choice(_DOMAINS)}", first, last,
            choice(("male", "female", "unknown")), choice(("html", "text", "unknown")),
            _LANGUAGES.get(locale, "none"), external, born, int(opted_out), stamp if opted_out else "",
            stamp if opted_out else "", choice(places),
        )  # fmt: skip


def seed_profiles(
    storage: Storage,
    count: int,
    *,
    now: datetime,
    seed: int = 0,
    locales: Sequence[str] = DEFAULT_LOCALES,
    external_id_share: float = 0.7,
) -> int:
    """Insert ``count`` generated profiles; returns the table size afterwards."""
    spec = storage.schema.resources["profile"]
    start = storage.table_size(spec) + 1
    rows = _rows(count, start, seed, locales, external_id_share, now)
    remaining = count
    while remaining > 0:
        chunk = [next(rows) for _ in range(min(_CHUNK, remaining))]
        storage.insert_many(spec, _COLUMNS, chunk)
        remaining -= len(chunk)
    return storage.table_size(spec)
