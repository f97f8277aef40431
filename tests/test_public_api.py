"""The public surface is pinned: a change to it is a deliberate, reviewed change."""

from __future__ import annotations

import re

import crmbridge
from crmbridge import exceptions


def test_public_api_is_exactly_the_curated_list() -> None:
    assert sorted(crmbridge.__all__) == [
        "AuthenticationError",
        "CheckpointExpired",
        "ConfigError",
        "CrmbridgeError",
        "EmailEvent",
        "EventType",
        "FatalError",
        "OptOutChange",
        "PermissionDenied",
        "ProtocolError",
        "RateLimited",
        "RecordError",
        "SourceChange",
        "Tombstone",
        "TransientError",
        "__version__",
    ]
    for name in crmbridge.__all__:
        assert hasattr(crmbridge, name), name


def test_error_tree_in_docstring_matches_the_classes() -> None:
    doc = exceptions.__doc__ or ""
    drawn = re.findall(r"[├└]── (\w+)", doc)
    declared = [child.__name__ for children in exceptions.TAXONOMY.children.values() for child in children]
    assert sorted(drawn) == sorted(declared)
    for parent, children in exceptions.TAXONOMY.children.items():
        for child in children:
            assert issubclass(child, parent)
