"""The root model of crmbridge.yaml, with the opt-out, state and service sections."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, field_validator, model_validator

from crmbridge.config.checks import find_cross_problems
from crmbridge.config.connections import CampaignSettings, DynamicsSettings
from crmbridge.config.events import EventsSettings
from crmbridge.config.mappings import TableMapping
from crmbridge.config.types import ColumnName, Duration, OptionalSecret, PositiveDuration, Strict

__all__ = [
    "CAMPAIGN_OPT_OUT_FIELDS",
    "CrmbridgeConfig",
    "OptOutPair",
    "OptOutSettings",
    "ServiceSettings",
    "StateSettings",
]

# The fixed list of ACS profile opt-out booleans (shared/reference/adobe-d365-integration.md §3.9).
CAMPAIGN_OPT_OUT_FIELDS = (
    "blackList",
    "blackListEmail",
    "blackListMobile",
    "blackListPhone",
    "blackListPostalMail",
    "blackListFax",
    "blackListPushnotification",
    "ccpaOptOut",
)


class OptOutPair(Strict):
    """A Dynamics boolean column and the Campaign opt-out field kept equal to it."""

    dynamics: ColumnName = Field(description="Contact boolean column, e.g. donotbulkemail.")
    campaign: Literal[
        "blackList",
        "blackListEmail",
        "blackListMobile",
        "blackListPhone",
        "blackListPostalMail",
        "blackListFax",
        "blackListPushnotification",
        "ccpaOptOut",
    ] = Field(description="Campaign profile opt-out field.")


class OptOutSettings(Strict):
    """Job 4: opt-out flags in one or both directions, with a logged conflict rule."""

    mode: Literal["disabled", "dynamics_to_campaign", "campaign_to_dynamics", "bidirectional"] = Field(
        default="disabled", description="Which way opt-outs travel."
    )
    pairs: list[OptOutPair] = Field(default_factory=list, description="Dynamics column ↔ Campaign field pairs.")
    conflict_rule: Literal["adobe", "opt_out_wins", "dynamics_wins", "campaign_wins"] = Field(
        default="adobe",
        description="adobe: the newer Campaign attribute timestamp wins, otherwise opt-out = true wins.",
    )
    timestamps: Literal["per_flag", "profile_last_modified", "auto"] = Field(
        default="auto", description="Which Campaign timestamp dates a flag change; auto uses per-flag where present."
    )
    interval: PositiveDuration | None = Field(default=None, description="Poll interval; default service.interval.")
    overlap: Duration = Field(
        default=timedelta(minutes=1), description="Re-read this far behind the lastModified watermark."
    )

    @field_validator("pairs")
    @classmethod
    def _each_field_paired_once(cls, pairs: list[OptOutPair]) -> list[OptOutPair]:
        for side in ("dynamics", "campaign"):
            seen: dict[str, int] = {}
            for index, pair in enumerate(pairs):
                name = getattr(pair, side)
                if name in seen:
                    raise ValueError(f"pairs[{seen[name]}] and pairs[{index}] both use {name}; pair it once")
                seen[name] = index
        return pairs

    @model_validator(mode="after")
    def _pairs_when_enabled(self) -> OptOutSettings:
        if self.mode != "disabled" and not self.pairs:
            raise ValueError(f"mode {self.mode} needs at least one pair, e.g. donotbulkemail ↔ blackListEmail")
        return self


class StateSettings(Strict):
    """Where crmbridge keeps checkpoints, links, dead letters and logs."""

    url: str = Field(
        default="sqlite:///.crmbridge/state.db",
        description="SQLAlchemy URL: sqlite:///path (default) or postgresql+psycopg://user@host/db.",
    )
    dead_letter_retention_days: Annotated[int, Field(ge=1, le=3650)] = Field(
        default=30, description="Payloads of dead letters (personal data) are purged after this many days."
    )
    unmatched_event_retention_days: Annotated[int, Field(ge=1, le=3650)] = Field(
        default=30, description="Unmatched events (personal data) are purged after this many days."
    )

    @field_validator("url")
    @classmethod
    def _known_backend(cls, url: str) -> str:
        scheme = urlsplit(url).scheme
        if scheme not in ("sqlite", "postgresql", "postgresql+psycopg", "postgres"):
            raise ValueError("use sqlite:///path/state.db or postgresql+psycopg://user@host/database")
        return url


class ServiceSettings(Strict):
    """The long-running service: dashboard and metrics endpoint, shutdown and logs."""

    host: str = Field(default="127.0.0.1", min_length=1, description="Dashboard and /metrics bind address.")
    port: Annotated[int, Field(ge=1, le=65535)] = Field(default=8321, description="Dashboard and /metrics port.")
    dashboard_token: OptionalSecret = Field(default=None, description="Required by the dashboard's write actions.")
    shutdown_grace: PositiveDuration = Field(default=timedelta(seconds=10), description="Time to finish a batch.")
    log_format: Literal["auto", "json", "text"] = Field(default="auto", description="auto: text on a terminal.")
    interval: PositiveDuration = Field(default=timedelta(minutes=1), description="Default interval of every flow.")


class CrmbridgeConfig(Strict):
    """The whole of crmbridge.yaml."""

    version: Literal[1] = Field(description="Format version of this file; always 1.")
    dynamics: DynamicsSettings
    campaign: CampaignSettings
    mappings: list[TableMapping] = Field(default_factory=list)
    events: EventsSettings | None = None
    optouts: OptOutSettings = Field(default_factory=OptOutSettings)
    state: StateSettings = Field(default_factory=StateSettings)
    service: ServiceSettings = Field(default_factory=ServiceSettings)

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> CrmbridgeConfig:
        # The loader runs these checks itself, to point each problem at its own line.
        if isinstance(info.context, dict) and info.context.get("skip_cross_checks"):
            return self
        problems = find_cross_problems(self.model_dump(mode="python"))
        if problems:
            raise ValueError("; ".join(f"{problem.path}: {problem.message}" for problem in problems))
        return self

    def mapping(self, name: str) -> TableMapping:
        """The mapping with this name (KeyError if there is none)."""
        for mapping in self.mappings:
            if mapping.name == name:
                return mapping
        raise KeyError(name)

    def interval_of(self, section: TableMapping | EventsSettings | OptOutSettings) -> timedelta:
        """A flow's interval: its own, or the service default."""
        return section.interval or self.service.interval
