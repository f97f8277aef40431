"""The curated surface of crmbridge.dynamics, and the layering it must not break."""

from __future__ import annotations

import subprocess
import sys

import crmbridge.dynamics as dynamics


def test_every_exported_name_resolves() -> None:
    for name in dynamics.__all__:
        assert getattr(dynamics, name) is not None


def test_importing_the_emulator_does_not_load_the_client_or_msal() -> None:
    probe = (
        "import sys, crmbridge.emulators.dynamics;"
        "print('crmbridge.dynamics.client' in sys.modules, 'msal' in sys.modules)"
    )
    output = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout

    assert output.split() == ["False", "False"]
