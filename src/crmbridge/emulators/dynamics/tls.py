"""HTTPS for the emulator: a local CA generated with trustme and a server certificate it signs.

MSAL and other real clients refuse plain-http authorities (see NOTES.md); clients trust the written CA file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import trustme

__all__ = ["TlsFiles", "make_tls_files"]


@dataclass(frozen=True, slots=True)
class TlsFiles:
    ca_path: Path  # give this to clients (MSAL verify=, httpx verify=, REQUESTS_CA_BUNDLE)
    cert_path: Path
    key_path: Path


def make_tls_files(directory: str | Path, ca_out: str | Path | None = None, hosts: tuple[str, ...] = ()) -> TlsFiles:
    """Write a fresh CA, and a certificate for 127.0.0.1/localhost (plus ``hosts``) signed by it."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="crmbridge Dataverse emulator")
    server = ca.issue_cert("127.0.0.1", "localhost", "::1", *hosts)
    files = TlsFiles(Path(ca_out) if ca_out else folder / "ca.pem", folder / "server.pem", folder / "server.key")
    files.ca_path.parent.mkdir(parents=True, exist_ok=True)
    ca.cert_pem.write_to_path(str(files.ca_path))
    server.private_key_pem.write_to_path(str(files.key_path))
    with files.cert_path.open("wb") as handle:
        for pem in server.cert_chain_pems:
            handle.write(pem.bytes())
    return files
