"""Campaign-level and gateway error responses with the messages of campaign-standard-api.md §1.5 and §4.6.

The body of a Campaign-level error is unconfirmed (§4.7): the emulator sends ``{"code": <status>, "message": …}``
as JSON, the envelope the gateway uses for URI errors (inferred).
"""

from __future__ import annotations

from starlette.responses import JSONResponse

__all__ = [
    "RST_PREFIX",
    "CampaignError",
    "duplicate_key",
    "gateway_error",
    "invalid_enum",
    "invalid_pkey",
    "key_change",
    "not_found",
    "read_only",
    "unknown_property",
    "unknown_resource",
]

RST_PREFIX = "RST-360011 An error has occurred - please contact your administrator."


class CampaignError(Exception):
    """An error Campaign itself answers (after the gateway): status plus its RST/XTK/PGS message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def response(self) -> JSONResponse:
        return JSONResponse({"code": self.status, "message": self.message}, status_code=self.status)


def gateway_error(status: int, error_code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """Adobe I/O gateway envelope: ``{"error_code": "401013", "message": …}`` (§1.5)."""
    return JSONResponse({"error_code": error_code, "message": message}, status_code=status, headers=headers)


def unknown_resource() -> CampaignError:
    return CampaignError(404, f"{RST_PREFIX} Error rc=-2003")


def not_found(xtk_label: str, key: str) -> CampaignError:
    return CampaignError(404, f"{RST_PREFIX} Unable to find document with path '{xtk_label}' from key '{key}:0'")


def invalid_pkey(pkey: str, schema_label: str, schema: str) -> CampaignError:
    bare = pkey.lstrip("@")
    return CampaignError(
        500,
        f"{RST_PREFIX} '{bare}' attribute unknown (see definition of '{schema_label} ({schema})' schema). "
        f"XTK-170036 Unable to parse expression '@id = @{bare}'.",
    )


def unknown_property(name: str, resource: str) -> CampaignError:
    return CampaignError(500, f"{RST_PREFIX} '{name}' property is not valid for the '{resource}' resource")


def read_only(name: str) -> CampaignError:
    return CampaignError(500, f"{RST_PREFIX} Cannot update the '{name}' property that is read-only")


def invalid_enum(value: object, schema: str, name: str) -> CampaignError:
    return CampaignError(
        500,
        f"{RST_PREFIX} The value '{value}' is not valid for the '{schema}:{name}' enumeration of the '@{name}' field",
    )


def duplicate_key(xtk_label: str, key: str, index: str) -> CampaignError:
    # The PostgreSQL tail after PGS-220000 is inferred; the head is from Adobe's error table (§4.6).
    return CampaignError(
        500,
        f"{RST_PREFIX} A '{xtk_label}' with the same key '{key}' already exists. PGS-220000 PostgreSQL error: "
        f'ERROR:  duplicate key value violates unique constraint "{index}"',
    )


def key_change(resource: str, old: str, new: str) -> CampaignError:
    detail = f"Inconsistent operation on resource '{resource}' – Cannot update key '{old}' to '{new}'."
    return CampaignError(500, f"{RST_PREFIX} RST-360012 {detail}")


def bad_value(name: str, value: object) -> CampaignError:
    # ACS's message for a wrongly typed value is undocumented (inferred wording).
    return CampaignError(500, f"{RST_PREFIX} Invalid value '{value}' for the '{name}' property")
