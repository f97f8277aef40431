"""Email events of the ACS emulator: simulated deliveries, the Adobe I/O Events journal, export files over SFTP.

Self-contained and pluggable: the emulator core mounts :func:`journal_routes` (with its own bearer check)
and :func:`operator_routes` (with its own profile lookup) next to its REST routes.
"""

from __future__ import annotations

from crmbridge.emulators.campaign.events.clock import Clock, ManualClock, utc_now
from crmbridge.emulators.campaign.events.exports import ExportSettings
from crmbridge.emulators.campaign.events.hub import EventsHub, JournalFaults
from crmbridge.emulators.campaign.events.journal import BearerCheck, JournalRegistration, TokenInfo, journal_routes
from crmbridge.emulators.campaign.events.operator import TargetResolver, operator_routes
from crmbridge.emulators.campaign.events.sftp import ExportSftpServer, SftpAccount
from crmbridge.emulators.campaign.events.simulation import DeliveryReport, DeliverySpec, Rates, TrackedLink
from crmbridge.emulators.campaign.targets import DeliveryTarget, TargetSpec

__all__ = [
    "BearerCheck",
    "Clock",
    "DeliveryReport",
    "DeliverySpec",
    "DeliveryTarget",
    "EventsHub",
    "ExportSettings",
    "ExportSftpServer",
    "JournalFaults",
    "JournalRegistration",
    "ManualClock",
    "Rates",
    "SftpAccount",
    "TargetResolver",
    "TargetSpec",
    "TokenInfo",
    "TrackedLink",
    "journal_routes",
    "operator_routes",
    "utc_now",
]
