"""Shared hypothesis settings and value generators for the parser fuzzers.

The default suite runs a bounded number of examples; ``-m slow`` variants use ``DEEP``. Deadlines catch hangs.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

QUICK = settings(
    max_examples=60,
    deadline=timedelta(seconds=2),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    database=None,
)
DEEP = settings(QUICK, max_examples=3000)

# Text that reaches into the corners parsers trip on: non-ASCII digits, surrogates-free unicode, CR/LF, quotes.
AWKWARD = st.sampled_from(
    [
        "",
        " ",
        "\r\n",
        "\n",
        "--",
        "²",
        "٣",
        "0001-01-01T00:00:00+05:00",
        "9999-12-31T23:59:59-05:00",
        "0001-01-01 00:00:00.000Z",
        "2025-13-45",
        "2025-02-30T10:00:00Z",
        "null",
        "Z",
        '"',
        "'",
        "\x00",
        "é",
    ]
)
TEXT = st.one_of(AWKWARD, st.text(max_size=30))
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    TEXT,
)


def json_trees(keys: st.SearchStrategy[str] = TEXT, *, max_leaves: int = 25) -> st.SearchStrategy[Any]:
    return st.recursive(
        SCALARS,
        lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=6)),
        max_leaves=max_leaves,
    )
