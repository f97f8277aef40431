"""SFTP access to the export folder, on 127.0.0.1, as the Transfer file activity's target would offer it (§C.4).

Served with asyncssh: a host key generated at start, one user with a password and/or authorised public keys,
and the session chrooted to the export folder, so readers list and fetch files as on an ACS SFTP server.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh

__all__ = ["ExportSftpServer", "SftpAccount"]


@dataclass(frozen=True, slots=True)
class SftpAccount:
    username: str
    password: str | None = None
    authorized_keys: tuple[str, ...] = field(default=())  # OpenSSH public key lines

    def __post_init__(self) -> None:
        if self.password is None and not self.authorized_keys:
            raise ValueError("an SFTP account needs a password or at least one authorized key")


class _Gatekeeper(asyncssh.SSHServer):
    def __init__(self, account: SftpAccount) -> None:
        self._account = account
        self._conn: Any = None

    def connection_made(self, conn: Any) -> None:
        self._conn = conn

    def begin_auth(self, username: str) -> bool:
        if username == self._account.username and self._account.authorized_keys:
            self._conn.set_authorized_keys(asyncssh.import_authorized_keys("\n".join(self._account.authorized_keys)))
        return True  # always ask for credentials

    def password_auth_supported(self) -> bool:
        return self._account.password is not None

    def validate_password(self, username: str, password: str) -> bool:
        expected = self._account.password or ""
        return username == self._account.username and hmac.compare_digest(password.encode(), expected.encode())


class ExportSftpServer:
    """Start with :meth:`start`, read the port from :attr:`port`, stop with :meth:`close`."""

    def __init__(self, folder: Path, account: SftpAccount, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.folder = folder
        self.account = account
        self.host = host
        self.port = port
        self.host_key = asyncssh.generate_private_key("ssh-ed25519")
        self._server: Any = None

    @property
    def host_public_key(self) -> str:
        """The host key line a client can pin instead of trusting on first use."""
        return str(self.host_key.export_public_key().decode().strip())

    async def start(self) -> int:
        self.folder.mkdir(parents=True, exist_ok=True)
        root = str(self.folder.resolve()).encode()
        self._server = await asyncssh.listen(
            self.host,
            self.port,
            server_host_keys=[self.host_key],
            server_factory=lambda: _Gatekeeper(self.account),
            sftp_factory=lambda channel: asyncssh.SFTPServer(channel, chroot=root),
            allow_scp=False,
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> ExportSftpServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
