"""Dataverse Web API emulator: ``create_app(DynamicsEmulatorSettings(...))`` gives a mountable Starlette app."""

from __future__ import annotations

from crmbridge.emulators.dynamics.app import DynamicsEmulator, create_app
from crmbridge.emulators.dynamics.settings import DEFAULT_CLIENT, DynamicsEmulatorSettings

__all__ = ["DEFAULT_CLIENT", "DynamicsEmulator", "DynamicsEmulatorSettings", "create_app"]
