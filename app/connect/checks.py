"""The *Test connection* report: log in to IMAP and greet SMTP, one line per check."""

from __future__ import annotations

import imaplib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from imap_tools.errors import ImapToolsError

from app.connect.errors import SECURITY_LABELS, MailConnectError
from app.connect.imap import close_quietly, open_imap
from app.connect.smtp import check_smtp

if TYPE_CHECKING:
    from app.models import MailServer


@dataclass(frozen=True)
class CheckResult:
    """One line of a *Test connection* report."""

    name: str
    ok: bool
    message: str


def imap_check(server: MailServer, login: str | None, secret: str | None, *,
               timeout: float | None = None) -> CheckResult:
    """Log in to IMAP, count the folders, log out: the "IMAP login" line of a test."""
    where = f"{server.imap_host}:{server.imap_port}"
    security = SECURITY_LABELS.get(server.imap_security, server.imap_security)
    try:
        box = open_imap(server, login or "", secret, timeout=timeout)
    except MailConnectError as exc:
        return CheckResult("IMAP login", False, str(exc))
    try:
        folders = len(box.folder.list())
        detail = f"; {folders} folder{'s' if folders != 1 else ''} visible"
    except (ImapToolsError, imaplib.IMAP4.error, OSError):
        detail = ""
    finally:
        try:
            box.logout()
        except (ImapToolsError, imaplib.IMAP4.error, OSError):
            close_quietly(box)
    return CheckResult("IMAP login", True, f"Logged in to {where} ({security}) as {login}{detail}.")


def smtp_check(server: MailServer, login: str | None, secret: str | None, *,
               timeout: float | None = None) -> CheckResult:
    """Greet SMTP (and log in when set and a secret is given): the "SMTP" line of a test."""
    where = f"{server.smtp_host}:{server.smtp_port}"
    security = SECURITY_LABELS.get(server.smtp_security, server.smtp_security)
    try:
        check_smtp(server, login, secret, timeout=timeout)
    except MailConnectError as exc:
        return CheckResult("SMTP", False, str(exc))
    if server.smtp_auth and secret:
        what = f"accepted the login for {login}"
    elif server.smtp_auth:
        what = "greeted us; no password given, so the login was not tried"
    else:
        what = "greeted us (set to need no login)"
    return CheckResult("SMTP", True, f"{where} ({security}) {what}.")


def test_connection(server: MailServer, login: str | None, secret: str | None, *,
                    timeout: float | None = None) -> list[CheckResult]:
    """Log in to IMAP and greet SMTP; one ``CheckResult`` per check, in plain words."""
    return [imap_check(server, login, secret, timeout=timeout),
            smtp_check(server, login, secret, timeout=timeout)]


# pytest collects module-level names starting with "test"; this one is not a test.
test_connection.__test__ = False  # type: ignore[attr-defined]
