"""The `dynamics:` example in docs/dynamics-setup.md is a valid configuration section (docs are executable)."""

from __future__ import annotations

import re
from pathlib import Path

from ruamel.yaml import YAML

from crmbridge.config import DynamicsSettings

DOC = Path(__file__).parents[2] / "docs" / "dynamics-setup.md"


def _yaml_blocks() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL)


def test_setup_guide_connection_example_validates_as_dynamics_settings() -> None:
    complete = [block for block in _yaml_blocks() if "org_url:" in block]
    assert complete, "the guide must show a complete dynamics: section"
    for block in complete:
        section = YAML(typ="safe").load(block)["dynamics"]
        settings = DynamicsSettings.model_validate(section)
        assert settings.api_url == "https://contoso.crm.dynamics.com/api/data/v9.2/"
        assert settings.scope == "https://contoso.crm.dynamics.com/.default"


def test_setup_guide_certificate_example_validates_with_the_connection_fields() -> None:
    block = next(block for block in _yaml_blocks() if "certificate:" in block)
    certificate = YAML(typ="safe").load(block)["dynamics"]["certificate"]
    base = {"org_url": "https://contoso.crm.dynamics.com", "tenant_id": "t", "client_id": "c"}

    settings = DynamicsSettings.model_validate({**base, "certificate": certificate})

    assert settings.certificate is not None
    assert settings.certificate.thumbprint == certificate["thumbprint"]
