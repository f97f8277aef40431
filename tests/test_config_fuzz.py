"""Whatever text reaches the loader, the result is a config or a ConfigError, never another exception."""

from __future__ import annotations

import io
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from crmbridge.config import CrmbridgeConfig, parse_config
from crmbridge.config.reference import sections
from crmbridge.exceptions import ConfigError

# Real keys make the generator reach deep into the models instead of failing at the top level.
KEYS = sorted({key for _, model in sections() for key in model.model_fields} | {"x", "${A}", "1"})
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["30s", "P2D", "https://a.example", "http://127.0.0.1:1", "${A}", "${UNSET}", "${A:-x}", "$$"]),
    st.sampled_from(["contact", "blackListEmail", "donotbulkemail", "bidirectional", "adobeio_api", "null", "in"]),
    st.text(max_size=12),
)
TREES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.sampled_from(KEYS), children, max_size=6)
    ),
    max_leaves=40,
)


def dump(tree: Any) -> str:
    stream = io.StringIO()
    YAML(typ="safe").dump(tree, stream)
    return stream.getvalue()


def load_or_config_error(text: str) -> None:
    outcome: CrmbridgeConfig | ConfigError
    try:
        outcome = parse_config(text, source="fuzz.yaml", environ={"A": "7"})
    except ConfigError as error:
        outcome = error
    if isinstance(outcome, ConfigError):
        assert outcome.problems, "a ConfigError always lists its problems"
        assert all(problem.line is None or problem.line >= 1 for problem in outcome.problems)
    else:
        assert isinstance(outcome, CrmbridgeConfig)


DOCUMENTS = st.dictionaries(st.sampled_from(KEYS), TREES, max_size=8)
YAML_ISH_TEXT = st.text(alphabet=st.sampled_from(list("ab:-[]{}&*!|>'\"#%@`,?\n\t ${}0.\\\x00é")), max_size=80)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(DOCUMENTS)
def test_random_yaml_documents_give_a_config_or_a_config_error(tree: dict[str, Any]) -> None:
    load_or_config_error(dump(tree))


@settings(max_examples=60, deadline=None)
@given(YAML_ISH_TEXT)
def test_random_yaml_ish_text_gives_a_config_or_a_config_error(text: str) -> None:
    load_or_config_error(text)


@pytest.mark.slow
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(DOCUMENTS)
def test_many_random_yaml_documents_give_a_config_or_a_config_error(tree: dict[str, Any]) -> None:
    load_or_config_error(dump(tree))


@pytest.mark.slow
@settings(max_examples=1000, deadline=None)
@given(YAML_ISH_TEXT)
def test_much_random_yaml_ish_text_gives_a_config_or_a_config_error(text: str) -> None:
    load_or_config_error(text)
