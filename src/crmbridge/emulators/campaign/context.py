"""The state one emulated instance shares between its routes, operator endpoints and plug-ins."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from crmbridge.emulators.campaign.gateway import RateLimiter
from crmbridge.emulators.campaign.ims import TokenStore
from crmbridge.emulators.campaign.keys import PKeyCodec
from crmbridge.emulators.campaign.schema import Schema
from crmbridge.emulators.campaign.settings import CampaignEmulatorSettings
from crmbridge.emulators.campaign.storage import Storage
from crmbridge.emulators.faults import FaultInjector

if TYPE_CHECKING:
    from crmbridge.emulators.campaign.privacy import PrivacyRequests

__all__ = ["EmulatorContext"]


@dataclass(slots=True)
class EmulatorContext:
    settings: CampaignEmulatorSettings
    schema: Schema
    storage: Storage
    pkeys: PKeyCodec
    ims: TokenStore
    limiter: RateLimiter
    privacy: PrivacyRequests
    faults: FaultInjector | None = None

    def now(self) -> datetime:
        return self.settings.clock.now()
