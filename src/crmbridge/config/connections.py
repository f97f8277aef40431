"""How to reach each service: the Dynamics 365 (Dataverse) and Adobe Campaign Standard connection settings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from crmbridge.config.types import OptionalSecret, ProxyUrl, RequiredSecret, ServiceUrl, Strict

__all__ = ["CampaignSettings", "CertificateCredential", "DynamicsSettings"]


class CertificateCredential(Strict):
    """An Entra ID certificate credential: a PEM file holding the private key (and certificate) and its thumbprint."""

    path: Path = Field(description="PEM file with the private key and the certificate.")
    thumbprint: str = Field(
        pattern=r"^[0-9A-Fa-f]{40}$", description="SHA-1 thumbprint of the certificate, as shown by Entra ID."
    )
    passphrase: OptionalSecret = Field(default=None, description="Passphrase of the private key, if encrypted.")


class DynamicsSettings(Strict):
    """Dataverse Web API connection, authenticated as an Entra ID application user (client credentials)."""

    org_url: ServiceUrl = Field(description="Org URL, e.g. https://contoso.crm.dynamics.com (http only for 127.0.0.1).")
    tenant_id: str = Field(min_length=1, description="Entra ID tenant: a GUID or a domain such as contoso.com.")
    client_id: str = Field(min_length=1, description="Application (client) id of the app registration.")
    client_secret: OptionalSecret = Field(default=None, description="Client secret; or use `certificate`.")
    certificate: CertificateCredential | None = Field(default=None, description="Certificate; or `client_secret`.")
    authority_host: ServiceUrl = Field(
        default="https://login.microsoftonline.com",
        description="Entra ID authority host; change it for sovereign clouds (e.g. https://login.microsoftonline.us).",
    )
    api_version: str = Field(default="9.2", pattern=r"^\d+\.\d+$", description="Web API version.")
    ca_bundle: Path | None = Field(default=None, description="PEM bundle of extra trusted CAs (TLS inspection).")
    proxy: ProxyUrl | None = Field(default=None, description="HTTP(S) proxy URL.")
    max_concurrency: Annotated[int, Field(ge=1, le=52)] = Field(
        default=8, description="Concurrent requests at most; Dataverse refuses more than 52 per user."
    )
    page_size: Annotated[int, Field(ge=1, le=5000)] = Field(
        default=5000, description="Rows per page (odata.maxpagesize); change tracking pages hold 5000 at most."
    )
    timeout_seconds: Annotated[float, Field(gt=0, le=600)] = Field(default=120, description="Per-request timeout.")

    @model_validator(mode="after")
    def _exactly_one_credential(self) -> DynamicsSettings:
        if (self.client_secret is None) == (self.certificate is None):
            raise ValueError("give exactly one of client_secret or certificate")
        return self

    @property
    def authority(self) -> str:
        """The MSAL authority: authority host and tenant."""
        return f"{self.authority_host}/{self.tenant_id}"

    @property
    def scope(self) -> str:
        """The client-credentials scope of the org."""
        return f"{self.org_url}/.default"

    @property
    def api_url(self) -> str:
        """Base URL of the Web API, with a trailing slash so relative paths join onto it."""
        return f"{self.org_url}/api/data/v{self.api_version}/"


# Scopes public ACS OAuth Server-to-Server clients request (shared/protocols/campaign-standard-api.md §1.3).
DEFAULT_CAMPAIGN_SCOPES = (
    "openid",
    "AdobeID",
    "campaign_sdk",
    "additional_info.projectedProductContext",
    "campaign_config_server_general",
    "deliverability_service_general",
)


class CampaignSettings(Strict):
    """Adobe Campaign Standard REST API connection, authenticated with Adobe IMS OAuth Server-to-Server."""

    organization: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$",
        description="Campaign tenant id, as in https://mc.adobe.io/{organization}/campaign (not the IMS org id).",
    )
    base_url: ServiceUrl = Field(default="https://mc.adobe.io", description="API gateway.")
    ims_url: ServiceUrl = Field(default="https://ims-na1.adobelogin.com", description="Adobe IMS.")
    client_id: str = Field(min_length=1, description="OAuth client id; also sent as X-Api-Key.")
    client_secret: RequiredSecret = Field(description="OAuth client secret.")
    scopes: list[str] = Field(
        default_factory=lambda: list(DEFAULT_CAMPAIGN_SCOPES),
        min_length=1,
        description="IMS token scopes, one per item (the credential in Developer Console lists them).",
    )
    ims_org_id: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9]+@AdobeOrg$", description="IMS organization id (…@AdobeOrg)."
    )
    ca_bundle: Path | None = Field(default=None, description="PEM bundle of extra trusted CAs.")
    proxy: ProxyUrl | None = Field(default=None, description="HTTP(S) proxy URL.")
    profile_resource: str = Field(
        default="profileAndServicesExt",
        pattern=r"^[A-Za-z][A-Za-z0-9]*$",
        description="API that holds profiles with their custom fields.",
    )
    external_id_filter: str = Field(
        default="byExternalId",
        pattern=r"^by[A-Za-z0-9]+$",
        description="Custom filter that finds a profile by externalId.",
    )
    max_concurrency: Annotated[int, Field(ge=1, le=256)] = Field(
        default=8, description="Concurrent requests at most (ACS answers in 100s of ms: throughput needs dozens)."
    )
    timeout_seconds: Annotated[float, Field(gt=0, le=600)] = Field(default=60, description="Per-request timeout.")

    @field_validator("scopes")
    @classmethod
    def _scopes_are_words(cls, scopes: list[str]) -> list[str]:
        for scope in scopes:
            if not scope or "," in scope or " " in scope:
                raise ValueError("list each scope as its own item, without commas or spaces")
        return scopes

    @property
    def api_url(self) -> str:
        """Base URL of the Campaign REST API, with a trailing slash."""
        return f"{self.base_url}/{self.organization}/campaign/"
