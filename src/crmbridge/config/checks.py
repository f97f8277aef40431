"""Checks that span sections (unique names, links, opt-out ownership, journal org id). Pure: data in, problems out.

They read the plain data of the file (dicts and lists), not the models, so the loader can report them together
with every other problem even when parts of the file do not validate; values of the wrong type are skipped here
because the models already report them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["CrossProblem", "Loc", "find_cross_problems", "format_path"]

Loc = tuple[str | int, ...]

# Resource names that mean "the ACS profile" in a mapping (opt-out pairs live on profiles).
_PROFILE_RESOURCES = frozenset({"profile", "profileAndServices", "profileAndServicesExt"})


@dataclass(frozen=True, slots=True)
class CrossProblem:
    """A problem at ``loc``; ``related`` names the other place involved, when there is one."""

    loc: Loc
    message: str
    related: Loc | None = None

    @property
    def path(self) -> str:
        return format_path(self.loc)


def format_path(loc: Loc) -> str:
    """``("mappings", 1, "fields", 3, "campaign")`` -> ``mappings[1].fields[3].campaign``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def find_cross_problems(data: Mapping[str, Any]) -> list[CrossProblem]:
    """Problems that involve more than one place of the file; ``data`` is the file as plain dicts and lists."""
    mappings = _items(data.get("mappings"))
    return [
        *_duplicate_mapping_names(mappings),
        *_bad_links(mappings),
        *_link_cycles(mappings),
        *_opt_out_ownership(data, mappings),
        *_journal_org_id(data),
    ]


def _items(value: Any) -> list[tuple[int, Mapping[str, Any]]]:
    """The (index, mapping) items of a list, skipping what is not a mapping."""
    if not isinstance(value, list):
        return []
    return [(index, item) for index, item in enumerate(value) if isinstance(item, Mapping)]


def _section(data: Mapping[str, Any], *keys: str) -> Mapping[str, Any]:
    node: Any = data
    for key in keys:
        node = node.get(key) if isinstance(node, Mapping) else None
    return node if isinstance(node, Mapping) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _duplicate_mapping_names(mappings: list[tuple[int, Mapping[str, Any]]]) -> Iterator[CrossProblem]:
    first: dict[str, int] = {}
    for index, mapping in mappings:
        name = _text(mapping.get("name"))
        if name is None:
            continue
        if name in first:
            earlier: Loc = ("mappings", first[name], "name")
            yield CrossProblem(
                ("mappings", index, "name"),
                f"mapping name {name!r} is already used by {format_path(earlier)}; names must be unique",
                earlier,
            )
        else:
            first[name] = index


def _bad_links(mappings: list[tuple[int, Mapping[str, Any]]]) -> Iterator[CrossProblem]:
    by_name = {name: (index, m) for index, m in mappings if (name := _text(m.get("name"))) is not None}
    for index, mapping in mappings:
        for link_index, link in _items(mapping.get("links")):
            parent_name = _text(link.get("mapping"))
            if parent_name is None:
                continue
            loc: Loc = ("mappings", index, "links", link_index, "mapping")
            if parent_name not in by_name:
                names = ", ".join(sorted(by_name)) or "none"
                yield CrossProblem(loc, f"no mapping is named {parent_name!r}; mapping names: {names}")
                continue
            parent_index, parent = by_name[parent_name]
            if parent.get("enabled", True) is False and mapping.get("enabled", True) is not False:
                yield CrossProblem(
                    loc,
                    f"parent mapping {parent_name!r} is disabled, so its children would wait forever; enable it",
                    ("mappings", parent_index, "enabled"),
                )


def _link_cycles(mappings: list[tuple[int, Mapping[str, Any]]]) -> Iterator[CrossProblem]:
    # A child is written after its parent; a cycle of two or more mappings would park its rows forever.
    # A mapping linking to itself (a hierarchy, e.g. parentaccountid) is fine: rows wait for their own parents.
    parents: dict[str, set[str]] = {}
    indexes: dict[str, int] = {}
    for index, mapping in mappings:
        name = _text(mapping.get("name"))
        if name is None:
            continue
        indexes.setdefault(name, index)
        linked = {_text(link.get("mapping")) for _, link in _items(mapping.get("links"))}
        parents.setdefault(name, set()).update(p for p in linked if p is not None and p != name)
    reported: set[str] = set()
    for name, index in indexes.items():
        path = _cycle_from(name, parents)
        if path and name not in reported:
            reported.update(path)
            yield CrossProblem(
                ("mappings", index, "links"),
                f"links form a cycle ({' -> '.join([*path, path[0]])}); a parent cannot also be a descendant",
            )


def _cycle_from(start: str, parents: dict[str, set[str]]) -> list[str] | None:
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    while stack:
        name, path = stack.pop()
        for parent in sorted(parents.get(name, ())):
            if parent == start:
                return path
            if parent not in path:
                stack.append((parent, [*path, parent]))
    return None


def _opt_out_ownership(
    data: Mapping[str, Any], mappings: list[tuple[int, Mapping[str, Any]]]
) -> Iterator[CrossProblem]:
    """Each opt-out field has one owner: a table mapping, or an opt-out pair (ARCHITECTURE.md, jobs 1 and 4)."""
    optouts = _section(data, "optouts")
    if optouts.get("mode", "disabled") == "disabled":
        return
    pairs = _items(optouts.get("pairs"))
    campaign_owner = {name: i for i, pair in reversed(pairs) if (name := _text(pair.get("campaign")))}
    dynamics_owner = {name: i for i, pair in reversed(pairs) if (name := _text(pair.get("dynamics")))}
    profile_resource = _text(_section(data, "campaign").get("profile_resource")) or "profileAndServicesExt"
    profile_resources = _PROFILE_RESOURCES | {profile_resource}
    for index, mapping in mappings:
        to_profiles = mapping.get("resource") in profile_resources
        from_contacts = mapping.get("table") == "contact"
        for field_index, field in _items(mapping.get("fields")):
            campaign, dynamics = _text(field.get("campaign")), _text(field.get("dynamics"))
            if to_profiles and campaign in campaign_owner:
                pair: Loc = ("optouts", "pairs", campaign_owner[campaign], "campaign")
                yield CrossProblem(
                    ("mappings", index, "fields", field_index, "campaign"),
                    f"{campaign} is written by this mapping and by the opt-out pair {format_path(pair)}; "
                    "an opt-out field has one owner: remove the field here or the pair",
                    pair,
                )
            elif from_contacts and dynamics in dynamics_owner:
                pair = ("optouts", "pairs", dynamics_owner[dynamics], "dynamics")
                yield CrossProblem(
                    ("mappings", index, "fields", field_index, "dynamics"),
                    f"{dynamics} is synced by this mapping and by the opt-out pair {format_path(pair)}; "
                    "an opt-out field has one owner: remove the field here or the pair",
                    pair,
                )


def _journal_org_id(data: Mapping[str, Any]) -> Iterator[CrossProblem]:
    journal = _section(data, "events", "source", "journal")
    if not journal:
        return
    if journal.get("ims_org_id") is None and _section(data, "campaign").get("ims_org_id") is None:
        yield CrossProblem(
            ("events", "source", "journal", "ims_org_id"),
            "the journal needs the IMS org id (…@AdobeOrg) for x-ims-org-id: set it here or in campaign.ims_org_id",
        )
