"""Realistic seed data for the Dataverse emulator: accounts, contacts, vehicles, and CRM-user style mutations.

Faker (several locales) fills pools of names, streets and cities once; rows are then combined from the pools
with a seeded ``random.Random``, which is what makes a million contacts seed in tens of seconds, not hours.
Pools always contain apostrophes and non-ASCII names; emails are ASCII, some plus-addressed.
"""

from __future__ import annotations

import functools
import random
import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from faker import Faker

from crmbridge.emulators.dynamics.protocol import ApiRequest
from crmbridge.emulators.dynamics.rows import from_payload
from crmbridge.emulators.dynamics.service import Org
from crmbridge.emulators.dynamics.writes import resolve_reference, update_row

__all__ = ["LOCALES", "SeedReport", "mutate", "seed"]

LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "pl_PL", "sv_SE")
SPECIAL_LAST_NAMES = ("O'Brien", "D'Angelo", "Ó Súilleabháin", "Müller-Lüdenscheidt", "Nguyễn", "Łukasiewicz")
SPECIAL_FIRST_NAMES = ("Zoë", "Siobhán", "Jérôme", "D'Arcy", "Åsa", "Søren")
BATCH = 20_000
T = TypeVar("T")
Place = tuple[str, str, str, str]  # street, city, postcode, country
MODELS = ("Golf", "Model 3", "Corolla", "Clio", "Octavia", "Civic", "Mustang", "Leaf", "Ibiza", "Astra")


@dataclass(frozen=True, slots=True)
class SeedReport:
    accounts: int
    contacts: int
    vehicles: int
    opted_out: int


class _Pools:
    def __init__(self, rnd: random.Random, seed_value: int) -> None:
        self.first, self.last, self.places, self.companies, self.phones = _faker_pools(seed_value)
        self.rnd = rnd


@functools.lru_cache(maxsize=4)
def _faker_pools(seed_value: int, size: int = 400) -> tuple[list[str], list[str], list[Place], list[str], list[str]]:
    """Faker is slow per call and per locale: draw the pools once per seed and reuse them."""
    fakers = [Faker(locale) for locale in LOCALES]
    for index, faker in enumerate(fakers):
        faker.seed_instance(seed_value + index)
    per = max(1, size // len(fakers))
    first = [f.first_name() for f in fakers for _ in range(per)] + list(SPECIAL_FIRST_NAMES)
    last = [f.last_name() for f in fakers for _ in range(per)] + list(SPECIAL_LAST_NAMES)
    places = [
        (f.street_address(), f.city(), f.postcode(), f.current_country()) for f in fakers for _ in range(per // 4 + 1)
    ]
    companies = [f.company() for f in fakers for _ in range(per // 2 + 1)]
    phones = [f.phone_number() for f in fakers for _ in range(per // 4 + 1)]
    return first, last, places, companies, phones


@functools.lru_cache(maxsize=4096)
def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in folded.lower() if ch.isalnum()) or "x"


def _pick(rnd: random.Random, items: Sequence[T]) -> T:
    """``random.choice`` without its per-call overhead (seeding calls it tens of millions of times)."""
    return items[int(rnd.random() * len(items))]


def _birthdate(rnd: random.Random) -> str:
    year, month, day = 1940 + int(rnd.random() * 66), 1 + int(rnd.random() * 12), 1 + int(rnd.random() * 28)
    return f"{year}-{month:02d}-{day:02d}"


def _guid(rnd: random.Random) -> str:
    return str(uuid.UUID(int=rnd.getrandbits(128), version=4))


def seed(
    org: Org,
    contacts: int = 1000,
    accounts: int | None = None,
    vehicles_share: float = 0.3,
    optout_share: float = 0.15,
    seed_value: int = 0,
) -> SeedReport:
    """Insert accounts, contacts (some opted out, most linked to an account) and vehicles linked to contacts."""
    rnd = random.Random(seed_value)
    pools = _Pools(rnd, seed_value)
    accounts = max(1, contacts // 20) if accounts is None else accounts
    account_ids = _seed_accounts(org, pools, accounts)
    contact_ids, opted_out = _seed_contacts(org, pools, contacts, account_ids, optout_share)
    vehicles = _seed_vehicles(org, pools, contact_ids, vehicles_share)
    return SeedReport(accounts, contacts, vehicles, opted_out)


def _stamps(org: Org, rnd: random.Random) -> tuple[str, str]:
    """createdon within the last two years, modifiedon between it and now (isoformat: strftime is slow)."""
    now = org.clock.now().timestamp()
    created = now - 1 - rnd.random() * 2 * 365 * 86400
    modified = created + rnd.random() * (now - created)
    return _iso(created), _iso(modified)


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(int(timestamp), UTC).isoformat()[:19] + "Z"


def _seed_accounts(org: Org, pools: _Pools, count: int) -> list[str]:
    table = org.storage.schema.tables["account"]
    names = ["accountid", "name", "accountnumber", "telephone1", "address1_line1", "address1_city",
             "address1_postalcode", "address1_country", "donotbulkemail", "statecode", "statuscode",
             "createdon", "modifiedon", "versionnumber"]  # fmt: skip
    rnd, ids, rows = pools.rnd, [], []
    for index in range(count):
        row_id = _guid(rnd)
        ids.append(row_id)
        street, city, postcode, country = _pick(rnd, pools.places)
        created, modified = _stamps(org, rnd)
        rows.append((row_id, _pick(rnd, pools.companies), f"ACC-{index:07d}", _pick(rnd, pools.phones), street,
                     city, postcode, country, 0, 0, 1, created, modified, org.storage.next_version()))  # fmt: skip
    org.storage.bulk_insert(table, names, rows)
    return ids


def _seed_contacts(
    org: Org, pools: _Pools, count: int, account_ids: list[str], optout_share: float
) -> tuple[list[str], int]:
    table = org.storage.schema.tables["contact"]
    names = ["contactid", "firstname", "lastname", "fullname", "emailaddress1", "emailaddress2", "telephone1",
             "mobilephone", "address1_line1", "address1_city", "address1_postalcode", "address1_country",
             "gendercode", "birthdate", "donotbulkemail", "donotemail", "donotphone", "donotpostalmail",
             "donotfax", "followemail", "parentcustomerid", "parentcustomerid__target", "statecode", "statuscode",
             "createdon", "modifiedon", "versionnumber"]  # fmt: skip
    rnd, ids, opted_out = pools.rnd, [], 0
    domains = ("example.com", "example.org", "example.net", "mail.example")
    for start in range(0, count, BATCH):
        rows: list[tuple[Any, ...]] = []
        for index in range(start, min(count, start + BATCH)):
            row_id = _guid(rnd)
            ids.append(row_id)
            first, last = _pick(rnd, pools.first), _pick(rnd, pools.last)
            local = f"{_ascii(first)}.{_ascii(last)}{index}"
            if rnd.random() < 0.1:
                local += f"+{_pick(rnd, ('news', 'crm', 'promo'))}"  # plus-addressing, a known key pitfall (§5.4)
            out = rnd.random() < optout_share
            opted_out += out
            street, city, postcode, country = _pick(rnd, pools.places)
            created, modified = _stamps(org, rnd)
            parent = _pick(rnd, account_ids) if account_ids and rnd.random() < 0.7 else None
            inactive = rnd.random() < 0.03
            rows.append((
                row_id, first, last, f"{first} {last}", f"{local}@{_pick(rnd, domains)}",
                f"{_ascii(last)}{index}@work.example" if rnd.random() < 0.2 else None, _pick(rnd, pools.phones),
                _pick(rnd, pools.phones) if rnd.random() < 0.5 else None, street, city, postcode, country,
                _pick(rnd, (1, 2, None)), _birthdate(rnd),
                int(out), int(out and rnd.random() < 0.5), int(rnd.random() < 0.05), int(rnd.random() < 0.05),
                int(rnd.random() < 0.05), 1, parent, "account" if parent else None, int(inactive),
                2 if inactive else 1, created, modified, org.storage.next_version(),
            ))  # fmt: skip
        org.storage.bulk_insert(table, names, rows)
    return ids, opted_out


def _seed_vehicles(org: Org, pools: _Pools, contact_ids: list[str], share: float) -> int:
    table = org.storage.schema.tables["new_vehicle"]
    names = ["new_vehicleid", "new_name", "new_vin", "new_model", "new_year", "new_contactid", "new_contactid__target",
             "statecode", "statuscode", "createdon", "modifiedon", "versionnumber"]  # fmt: skip
    rnd, rows, alphabet = pools.rnd, [], "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
    for contact_id in contact_ids:
        if rnd.random() >= share:
            continue
        model = _pick(rnd, MODELS)
        vin = "".join(_pick(rnd, alphabet) for _ in range(17))
        created, modified = _stamps(org, rnd)
        rows.append((_guid(rnd), f"{model} {vin[-6:]}", vin, model, rnd.randrange(1995, 2027), contact_id, "contact",
                     0, 1, created, modified, org.storage.next_version()))  # fmt: skip
    for start in range(0, len(rows), BATCH):
        org.storage.bulk_insert(table, names, rows[start : start + BATCH])
    return len(rows)


def mutate(org: Org, table_name: str, updates: int = 0, deletes: int = 0, ids: list[str] | None = None,
           changes: dict[str, Any] | None = None, seed_value: int | None = None) -> dict[str, list[str]]:  # fmt: skip
    """Change rows as a CRM user would: update (given values, or a new phone/job title/opt-out) and delete."""
    table = org.storage.schema.tables[table_name]
    rnd = random.Random(seed_value)
    chosen = list(ids or [])
    if chosen and not updates and not deletes:
        updates = len(chosen)
    wanted = updates + deletes - len(chosen)
    if wanted > 0:
        sample = org.storage.query(
            f"SELECT {table.primary_id} AS id FROM {table.sql_name} ORDER BY random() LIMIT ?", [wanted]
        )
        chosen += [r["id"] for r in sample]
    request = ApiRequest("PATCH", "", "", {}, b"", "", "operator")
    updated, deleted = [], []
    with org.storage.atomic():
        for row_id in chosen[:updates]:
            current = org.storage.get(table, row_id)
            if current is None:
                continue
            body = changes if changes is not None else _user_change(table_name, rnd)
            values = from_payload(table, body, lambda ref, target: resolve_reference(org, ref, target), creating=False)
            update_row(org, table, current, values, request)
            updated.append(row_id)
        for row_id in chosen[updates : updates + deletes]:
            if org.storage.get(table, row_id) is not None:
                org.storage.delete(table, row_id, org.clock.stamp())
                deleted.append(row_id)
    return {"updated": updated, "deleted": deleted}


def _user_change(table_name: str, rnd: random.Random) -> dict[str, Any]:
    if table_name == "contact":
        return _pick(rnd, [
            {"telephone1": f"+1 555 {rnd.randrange(1000, 9999)}"},
            {"jobtitle": _pick(rnd, ("CTO", "Buyer", "Head of Marketing", "Engineer"))},
            {"donotbulkemail": rnd.random() < 0.5},
            {"lastname": _pick(rnd, SPECIAL_LAST_NAMES)},
        ])  # fmt: skip
    if table_name == "new_vehicle":
        return {"new_model": _pick(rnd, MODELS)}
    if table_name == "account":
        return {"telephone1": f"+1 555 {rnd.randrange(1000, 9999)}"}
    return {}
