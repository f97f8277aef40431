"""Adobe Campaign Standard emulator: IMS, gateway checks, profileAndServices(Ext), custom resources, privacy.

``create_app(settings)`` returns the Starlette app; the CLI serves it with uvicorn (``crmbridge emulate campaign``).
"""

from __future__ import annotations

from crmbridge.emulators.campaign.app import create_app
from crmbridge.emulators.campaign.settings import CampaignEmulatorSettings, Clock, ImsClientConfig

__all__ = ["CampaignEmulatorSettings", "Clock", "ImsClientConfig", "create_app"]
