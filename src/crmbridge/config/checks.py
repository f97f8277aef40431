"""Checks that span sections (unique names, links, opt-out ownership, journal org id). Pure: config in, problems out."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crmbridge.config.model import CrmbridgeConfig

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


def find_cross_problems(config: CrmbridgeConfig) -> list[CrossProblem]:
    return [
        *_duplicate_mapping_names(config),
        *_bad_links(config),
        *_opt_out_ownership(config),
        *_journal_org_id(config),
    ]


def _duplicate_mapping_names(config: CrmbridgeConfig) -> Iterator[CrossProblem]:
    first: dict[str, int] = {}
    for index, mapping in enumerate(config.mappings):
        if mapping.name in first:
            earlier: Loc = ("mappings", first[mapping.name], "name")
            yield CrossProblem(
                ("mappings", index, "name"),
                f"mapping name {mapping.name!r} is already used by {format_path(earlier)}; names must be unique",
                earlier,
            )
        else:
            first[mapping.name] = index


def _bad_links(config: CrmbridgeConfig) -> Iterator[CrossProblem]:
    by_name = {mapping.name: mapping for mapping in config.mappings}
    for index, mapping in enumerate(config.mappings):
        for link_index, link in enumerate(mapping.links):
            loc: Loc = ("mappings", index, "links", link_index, "mapping")
            parent = by_name.get(link.mapping)
            if parent is None:
                names = ", ".join(sorted(by_name)) or "none"
                yield CrossProblem(loc, f"no mapping is named {link.mapping!r}; mapping names: {names}")
            elif not parent.enabled and mapping.enabled:
                yield CrossProblem(
                    loc,
                    f"parent mapping {link.mapping!r} is disabled, so children would wait forever; enable it",
                    ("mappings", config.mappings.index(parent), "enabled"),
                )
    yield from _link_cycles(config)


def _link_cycles(config: CrmbridgeConfig) -> Iterator[CrossProblem]:
    # A child is written after its parent; a cycle of two or more mappings would park its rows forever.
    parents = {m.name: {link.mapping for link in m.links if link.mapping != m.name} for m in config.mappings}
    reported: set[str] = set()
    for index, mapping in enumerate(config.mappings):
        path = _cycle_from(mapping.name, parents)
        if path and mapping.name not in reported:
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


def _opt_out_ownership(config: CrmbridgeConfig) -> Iterator[CrossProblem]:
    """Each opt-out field has one owner: a table mapping, or an opt-out pair (ARCHITECTURE.md, jobs 1 and 4)."""
    if config.optouts.mode == "disabled":
        return
    campaign_owner = {pair.campaign: index for index, pair in enumerate(config.optouts.pairs)}
    dynamics_owner = {pair.dynamics: index for index, pair in enumerate(config.optouts.pairs)}
    profile_resources = _PROFILE_RESOURCES | {config.campaign.profile_resource}
    for index, mapping in enumerate(config.mappings):
        to_profiles = mapping.resource in profile_resources
        from_contacts = mapping.table == "contact"
        for field_index, field in enumerate(mapping.fields):
            if to_profiles and field.campaign in campaign_owner:
                pair: Loc = ("optouts", "pairs", campaign_owner[field.campaign], "campaign")
                yield CrossProblem(
                    ("mappings", index, "fields", field_index, "campaign"),
                    f"{field.campaign} is written by this mapping and by the opt-out pair {format_path(pair)}; "
                    "an opt-out field has one owner: remove the field here or the pair",
                    pair,
                )
            elif from_contacts and field.dynamics in dynamics_owner:
                pair = ("optouts", "pairs", dynamics_owner[field.dynamics], "dynamics")
                yield CrossProblem(
                    ("mappings", index, "fields", field_index, "dynamics"),
                    f"{field.dynamics} is synced by this mapping and by the opt-out pair {format_path(pair)}; "
                    "an opt-out field has one owner: remove the field here or the pair",
                    pair,
                )


def _journal_org_id(config: CrmbridgeConfig) -> Iterator[CrossProblem]:
    if config.events is None or config.events.source.journal is None:
        return
    if config.events.source.journal.ims_org_id is None and config.campaign.ims_org_id is None:
        yield CrossProblem(
            ("events", "source", "journal", "ims_org_id"),
            "the journal needs the IMS org id (…@AdobeOrg) for x-ims-org-id: set it here or in campaign.ims_org_id",
        )
