"""Settings of the email-event flow (Campaign → Dynamics): where events come from and what is written where."""

from __future__ import annotations

import string
from dataclasses import fields as dataclass_fields
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from crmbridge.config.types import ColumnName, JournalStart, OptionalSecret, PositiveDuration, ServiceUrl, Strict
from crmbridge.records import EmailEvent, EventType

__all__ = [
    "ActivityColumns",
    "ActivityTable",
    "ActivityTables",
    "EventSource",
    "EventTypes",
    "EventsSettings",
    "ExportsSource",
    "FollowupTasks",
    "JournalSource",
    "Rollups",
    "SftpLocation",
]

# EmailEvent fields a journal payload can fill; the others are set by the reader itself.
PAYLOAD_FIELDS = frozenset(f.name for f in dataclass_fields(EmailEvent) if f.init) - {
    "source_kind",
    "source_position",
    "raw",
}

# The ACS payload schema on I/O Events is not public (shared/protocols/adobe-io-events-and-exports.md §B): these
# paths are inferred from the XDM Campaign ExperienceEvent field names and must be checked against a real tenant.
DEFAULT_PAYLOAD_MAPPING: dict[str, str] = {
    "event_type": "type",
    "occurred_at": "time",
    "source_event_id": "eventid",
    "external_id": "data.profile.externalId",
    "email": "data.profile.email",
    "campaign_id": "data.campaignID",
    "campaign_label": "data.campaignLabel",
    "delivery_id": "data.deliveryID",
    "delivery_label": "data.deliveryLabel",
    "broadlog_id": "data.broadlogID",
    "tracking_log_id": "data.trackinglogID",
    "url": "data.url",
    "url_label": "data.urlLabel",
    "url_type": "data.urlType",
    "bounce_type": "data.bounceType",
    "bounce_reason": "data.bounceReason",
    "mirror_page_url": "data.mirrorPageUrl",
}

# CloudEvent `type` codes of ACS email events (inferred: the real codes are discoverable only in an entitled org;
# these are the ones the emulator publishes, in the reverse-DNS style of other Adobe providers, §A.9).
DEFAULT_EVENT_CODES: dict[str, EventType] = {
    "com.adobe.campaign.standard.email.send": EventType.SEND,
    "com.adobe.campaign.standard.email.open": EventType.OPEN,
    "com.adobe.campaign.standard.email.click": EventType.CLICK,
    "com.adobe.campaign.standard.email.bounce": EventType.BOUNCE,
}

# The journal rejects a token without the I/O Management API scope (adobe-io-events-and-exports.md A.3).
DEFAULT_JOURNAL_SCOPES = ("openid", "AdobeID", "read_organizations", "adobeio_api")

TEMPLATE_FIELDS = frozenset({"campaign_id", "campaign_label", "delivery_id", "delivery_label", "url", "occurred_at"})


def _check_template(template: str) -> str:
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as error:
        raise ValueError(f"not a valid template ({error}); use {{campaign_id}} style placeholders") from None
    unknown = sorted(names - TEMPLATE_FIELDS)
    if unknown:
        raise ValueError(f"unknown placeholder {{{unknown[0]}}}; use any of {', '.join(sorted(TEMPLATE_FIELDS))}")
    return template


Template = Annotated[str, AfterValidator(_check_template)]


class JournalSource(Strict):
    """Adobe I/O Events journal (pull API) of the registration that receives the Campaign events."""

    url: ServiceUrl = Field(description="Journal URL, copied verbatim from the registration (do not build it).")
    ims_org_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9]+@AdobeOrg$",
        description="Sent as x-ims-org-id; defaults to campaign.ims_org_id.",
    )
    scopes: list[str] = Field(default_factory=lambda: list(DEFAULT_JOURNAL_SCOPES), description="IMS token scopes.")
    start: JournalStart = Field(default="latest", description="First read: oldest, latest, or a duration back.")
    page_limit: Annotated[int, Field(ge=1, le=10_000)] = Field(default=500, description="Events per journal read.")
    payload_mapping: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_PAYLOAD_MAPPING),
        description="EmailEvent field -> dotted path in the event (inferred defaults; replaces them all when set).",
    )
    event_codes: dict[str, EventType] = Field(
        default_factory=lambda: dict(DEFAULT_EVENT_CODES),
        description="CloudEvent type -> send/open/click/bounce (inferred defaults; replaces them all when set).",
    )

    @field_validator("scopes")
    @classmethod
    def _needs_adobeio_api(cls, scopes: list[str]) -> list[str]:
        if "adobeio_api" not in scopes:
            raise ValueError("the journal needs the adobeio_api scope (I/O Management API): add it to the list")
        return scopes

    @field_validator("payload_mapping")
    @classmethod
    def _known_event_fields(cls, mapping: dict[str, str]) -> dict[str, str]:
        for name, path in mapping.items():
            if name not in PAYLOAD_FIELDS:
                raise ValueError(f"{name!r} is not an EmailEvent field; use any of {', '.join(sorted(PAYLOAD_FIELDS))}")
            if not path or any(not part for part in path.split(".")):
                raise ValueError(f"{name}: {path!r} is not a dotted path such as data.deliveryName")
        for required in ("event_type", "occurred_at"):
            if required not in mapping:
                raise ValueError(f"map {required}: an event cannot be read without it")
        return mapping

    @property
    def start_back(self) -> timedelta | None:
        """How far back the first read seeks, or None for oldest / latest."""
        return self.start if isinstance(self.start, timedelta) else None


class SftpLocation(Strict):
    """The Campaign SFTP server that export workflows upload to."""

    host: str = Field(min_length=1, description="e.g. acme.campaign.adobe.com")
    port: Annotated[int, Field(ge=1, le=65535)] = Field(default=22, description="SSH port.")
    username: str = Field(min_length=1, description="SFTP user.")
    password: OptionalSecret = Field(default=None, description="Password; or use private_key.")
    private_key: Path | None = Field(default=None, description="Private key file; or use password.")
    private_key_passphrase: OptionalSecret = Field(default=None, description="Passphrase of the private key.")
    known_hosts: Path | None = Field(default=None, description="known_hosts file; default: the user's own.")
    remote_dir: str = Field(default="d365_loads/exports", min_length=1, description="Folder holding the files.")

    @model_validator(mode="after")
    def _exactly_one_credential(self) -> SftpLocation:
        if (self.password is None) == (self.private_key is None):
            raise ValueError("give exactly one of password or private_key")
        return self


class ExportsSource(Strict):
    """Delivery-log and tracking-log files written by ACS export workflows, in a folder or on SFTP."""

    folder: Path | None = Field(default=None, description="Local folder the files land in; or use sftp.")
    sftp: SftpLocation | None = Field(default=None, description="SFTP location; or use folder.")
    file_pattern: str = Field(default="*.txt*", min_length=1, description="Glob of the export files (.gz is read).")
    delimiter: str = Field(default="\t", min_length=1, max_length=1, description="Column separator.")
    encoding: str = Field(default="utf-8", min_length=1, description="File encoding, e.g. utf-8 or cp1252.")

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, encoding: str) -> str:
        import codecs

        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ValueError(f"unknown encoding {encoding!r}; use utf-8 or cp1252 (Latin 1)") from None
        return encoding

    @model_validator(mode="after")
    def _exactly_one_location(self) -> ExportsSource:
        if (self.folder is None) == (self.sftp is None):
            raise ValueError("give exactly one of folder or sftp")
        return self


class EventSource(Strict):
    """Exactly one of ``journal`` or ``exports``."""

    journal: JournalSource | None = None
    exports: ExportsSource | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> EventSource:
        if (self.journal is None) == (self.exports is None):
            raise ValueError("give exactly one of journal or exports")
        return self


class EventTypes(Strict):
    """Which events are written. Sends are the volume, so they are off unless asked for."""

    send: bool = Field(default=False, description="Write sends (the bulk of the volume).")
    open: bool = Field(default=True, description="Write opens.")
    click: bool = Field(default=True, description="Write URL clicks.")
    bounce: Literal["hard", "hard_and_soft", "off"] = Field(default="hard", description="Which bounces to write.")


class ActivityTable(Strict):
    """A Dataverse activity table: logical name and entity set name (the plural used in URLs)."""

    logical_name: ColumnName = Field(description="Table logical name, e.g. cmb_emailsend.")
    entity_set: ColumnName = Field(description="Entity set name used in URLs, e.g. cmb_emailsends.")


def _table(singular: str) -> ActivityTable:
    return ActivityTable(logical_name=singular, entity_set=singular + "s")


class ActivityTables(Strict):
    """One activity table per event type; defaults carry crmbridge's own publisher prefix (cmb_)."""

    send: ActivityTable = Field(default_factory=lambda: _table("cmb_emailsend"))
    open: ActivityTable = Field(default_factory=lambda: _table("cmb_emailopen"))
    click: ActivityTable = Field(default_factory=lambda: _table("cmb_emailclick"))
    bounce: ActivityTable = Field(default_factory=lambda: _table("cmb_emailbounce"))


class ActivityColumns(Strict):
    """Column logical names on the activity tables (the same on all four)."""

    subject: ColumnName = Field(default="subject", description="Activity subject (standard column).")
    occurred_on: ColumnName = Field(default="cmb_occurredon", description="When the event happened.")
    campaign: ColumnName = Field(default="cmb_campaignname", description="ACS campaign id.")
    delivery: ColumnName = Field(default="cmb_deliveryname", description="ACS delivery id.")
    url: ColumnName = Field(default="cmb_trackingurl", description="Clicked URL (clicks).")
    mirror_page: ColumnName = Field(default="cmb_mirrorpageurl", description="Mirror page URL.")
    bounce_reason: ColumnName = Field(default="cmb_bouncereason", description="Bounce reason (bounces).")
    event_key: ColumnName = Field(default="cmb_eventkey", description="Alternate-key column holding the event key.")


class Rollups(Strict):
    """Optional summary columns on the contact, computed from the event ledger."""

    enabled: bool = Field(default=False, description="Write the roll-up columns on the contact.")
    last_sent: ColumnName = Field(default="cmb_lastemailsenton", description="Date of the last send.")
    last_opened: ColumnName = Field(default="cmb_lastemailopenedon", description="Date of the last open.")
    last_clicked: ColumnName = Field(default="cmb_lastemailclickedon", description="Date of the last click.")
    last_bounced: ColumnName = Field(default="cmb_lastemailbouncedon", description="Date of the last bounce.")
    hard_bounced: ColumnName = Field(default="cmb_emailhardbounced", description="True after a hard bounce.")
    sent_count: ColumnName = Field(default="cmb_emailsentcount", description="Number of sends.")
    open_count: ColumnName = Field(default="cmb_emailopencount", description="Number of opens.")
    click_count: ColumnName = Field(default="cmb_emailclickcount", description="Number of clicks.")
    bounce_count: ColumnName = Field(default="cmb_emailbouncecount", description="Number of bounces.")


class FollowupTasks(Strict):
    """Optional `task` rows regarding the contact, at most one per event."""

    on_click: bool = Field(default=False, description="Create a task when a contact clicks.")
    on_hard_bounce: bool = Field(default=False, description="Create a task on a hard bounce.")
    click_subject: Template = Field(
        default="Follow up on URL click: {url}", description="Task subject; placeholders as in subject_template."
    )
    bounce_subject: Template = Field(
        default="Reconcile the invalid email address ({delivery_id})", description="Task subject on a bounce."
    )
    due_in_days: Annotated[int, Field(ge=0, le=365)] = Field(default=0, description="Due date: days after the event.")


class EventsSettings(Strict):
    """Job 3: email events from Campaign to activities on the Dynamics contact timeline."""

    enabled: bool = Field(default=True, description="False: the event flow does not run.")
    source: EventSource
    backfill_from_exports: ExportsSource | None = Field(
        default=None, description="Export files read to fill the gap after the journal answers 410 (expired)."
    )
    types: EventTypes = Field(default_factory=EventTypes)
    activity_tables: ActivityTables = Field(default_factory=ActivityTables)
    columns: ActivityColumns = Field(default_factory=ActivityColumns)
    subject_template: Template = Field(
        default="Campaign Name: {campaign_id}; Delivery Name: {delivery_id}",
        description="Activity subject; placeholders: campaign_id, campaign_label, delivery_id, delivery_label, url, "
        "occurred_at. The default matches Adobe's integration.",
    )
    rollups: Rollups = Field(default_factory=Rollups)
    followup_tasks: FollowupTasks = Field(default_factory=FollowupTasks)
    batch_size: Annotated[int, Field(ge=1, le=1000)] = Field(
        default=500, description="Activity rows per bulk write ($batch holds 1000 operations at most)."
    )
    interval: PositiveDuration | None = Field(default=None, description="Poll interval; default service.interval.")
    unmatched_retry_for: PositiveDuration = Field(
        default=timedelta(days=7),
        description="How long an event whose Dynamics contact does not exist yet is retried (with backoff, from "
        "15 minutes to 12 hours) before it stays for inspection until the retention purges it.",
    )

    @model_validator(mode="after")
    def _backfill_needs_journal(self) -> EventsSettings:
        if self.backfill_from_exports is not None and self.source.journal is None:
            raise ValueError("backfill_from_exports fills journal gaps: use it only with a journal source")
        return self
