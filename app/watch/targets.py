"""What the watcher watches: the enabled scanners read from the database, and what changed since.

``load_targets`` reads the scanners, their servers and folders in plain queries (synchronous: the
watcher calls it in a thread with an app context, every few seconds). Each target carries a
fingerprint of everything that needs a new connection when it changes (server, login, secret,
folders, the connection cap); the folders' progress (UIDVALIDITY and last UID stored) travels
beside it, because it changes with every scan and must not restart a watch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from flask import Flask
from sqlalchemy import select

from app.extensions import db
from app.models import MailAccount, MailServer, MailSettings, ScanFolder

# Scanner health that keeps it from being watched: the scans themselves decide when it is well again.
UNWATCHED_HEALTH = ("blocked", "reconnect")


@dataclass(frozen=True)
class WatchTarget:
    """One scanner as the watcher sees it; equal fingerprints mean "keep the connection"."""

    account_id: int
    name: str
    server_id: int
    host: str
    port: int
    security: str
    validate_cert: bool
    oauth: bool
    login: str
    secret_version: str  # the stored secret's ciphertext: a new password or token means a new login
    folders: tuple[str, ...]
    max_connections: int
    progress: dict[str, tuple[int | None, int]] = field(default_factory=dict, compare=False, hash=False)

    @property
    def fingerprint(self) -> tuple:
        """Everything that needs a new connection when it changes."""
        return (self.server_id, self.host, self.port, self.security, self.validate_cert, self.oauth,
                self.login, self.secret_version, self.folders, self.max_connections)

    @property
    def watch_connections(self) -> int:
        """Connections the watcher may open to this mailbox: the cap less one kept for its scan."""
        return max(1, (self.max_connections or 10) - 1)


@dataclass(frozen=True)
class Targets:
    """Every scanner to watch, by id, and how often a folder without IDLE is polled."""

    by_id: dict[int, WatchTarget]
    poll_seconds: float


_accounts, _servers, _folders = MailAccount.__table__, MailServer.__table__, ScanFolder.__table__


Rows = tuple[Sequence[Any], Sequence[Any], int]


def read_rows(app: Flask) -> Rows:
    """The rows of the enabled, healthy scanners with their servers, their folders, and the check frequency.

    Plain queries, no ORM objects: the watcher runs this every few seconds over every scanner and
    builds the targets again only when the rows changed.
    """
    with app.app_context():
        try:
            # Read only: MailSettings.get() would create the row, racing the web app doing the same.
            minutes = db.session.scalar(select(MailSettings.check_frequency_minutes)) or 5
            accounts = db.session.execute(
                select(_accounts.c.id, _accounts.c.name, _accounts.c.login, _accounts.c.password_enc,
                       _accounts.c.oauth_refresh_token_enc, _servers.c.id, _servers.c.imap_host,
                       _servers.c.imap_port, _servers.c.imap_security, _servers.c.validate_cert,
                       _servers.c.auth_method, _servers.c.max_connections)
                .join(_servers, _servers.c.id == _accounts.c.server_id)
                .where(_accounts.c.enabled.is_(True), _accounts.c.health.not_in(UNWATCHED_HEALTH))
                .order_by(_accounts.c.id)).all()
            folders = db.session.execute(
                select(_folders.c.account_id, _folders.c.name, _folders.c.uidvalidity, _folders.c.last_uid)
                .join(_accounts, _accounts.c.id == _folders.c.account_id)
                .where(_accounts.c.enabled.is_(True)).order_by(_folders.c.id)).all()
            db.session.commit()
        finally:
            db.session.remove()
    return accounts, folders, minutes


def load_targets(app: Flask, poll_override: float | None = None) -> Targets:
    """The enabled, healthy scanners with at least one folder (OAuth ones only once connected)."""
    return build_targets(read_rows(app), poll_override)


def build_targets(rows: Rows, poll_override: float | None = None) -> Targets:
    """The targets of the rows ``read_rows`` returned."""
    accounts, folder_rows, minutes = rows
    folders: dict[int, list[tuple[str, int | None, int]]] = {}
    for account_id, name, uidvalidity, last_uid in folder_rows:
        folders.setdefault(account_id, []).append((name, uidvalidity, last_uid or 0))
    found = {}
    for (account_id, name, login, password_enc, refresh_enc, server_id, host, port, security, validate,
         method, cap) in accounts:
        oauth = (method or "password") == "oauth2"
        secret = (refresh_enc if oauth else password_enc) or ""
        own = folders.get(account_id, [])
        if not own or (oauth and not secret):
            continue
        found[account_id] = WatchTarget(
            account_id=account_id, name=name, server_id=server_id, host=host, port=int(port), security=security,
            validate_cert=validate is not False, oauth=oauth, login=login, secret_version=secret[-24:],
            folders=tuple(f[0] for f in own), max_connections=cap or 10,
            progress={f[0]: (f[1], f[2]) for f in own})
    return Targets(found, poll_override or timedelta(minutes=minutes).total_seconds())


def watch_secret(app: Flask, account_id: int) -> str | None:
    """The login secret of a scanner (password, or a fresh OAuth access token), from a thread.

    ``app.connect.credentials.login_secret`` is synchronous and may refresh and commit a token,
    so the watcher calls this through ``asyncio.to_thread``.
    """
    from app.connect.credentials import login_secret

    with app.app_context():
        try:
            account = db.session.get(MailAccount, account_id)
            if account is None:
                return None
            return login_secret(account)
        finally:
            db.session.remove()
