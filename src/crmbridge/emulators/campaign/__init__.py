"""Adobe Campaign Standard emulator: IMS, gateway checks, profileAndServices(Ext), custom resources, privacy, and
email events (simulated deliveries, the Adobe I/O Events journal, export files over SFTP).

``create_campaign_emulator(settings)`` returns the complete Starlette app; the CLI serves it with uvicorn
(``crmbridge emulate campaign``). ``create_app(settings)`` is the core alone, for plug-ins and core tests.
"""

from __future__ import annotations

from crmbridge.emulators.campaign.app import create_app
from crmbridge.emulators.campaign.emulator import create_campaign_emulator
from crmbridge.emulators.campaign.settings import CampaignEmulatorSettings, Clock, EventsSettings, ImsClientConfig

__all__ = [
    "CampaignEmulatorSettings",
    "Clock",
    "EventsSettings",
    "ImsClientConfig",
    "create_app",
    "create_campaign_emulator",
]
