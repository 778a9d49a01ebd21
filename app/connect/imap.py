"""Logging in to a mail server's IMAP side (password, UTF-8 password, or XOAUTH2)."""

from __future__ import annotations

import imaplib
from typing import TYPE_CHECKING

from imap_tools import BaseMailBox, MailBox, MailBoxStartTls, MailBoxUnencrypted
from imap_tools.errors import ImapToolsError, MailboxLoginError, UnexpectedCommandStatusError

from app.connect.errors import (
    MailConnectError,
    connect_timeout,
    login_refused,
    network_error,
    scrub,
    server_text,
    ssl_context_for,
)

if TYPE_CHECKING:
    from app.models import MailServer


def _imap_box(server: MailServer, timeout: float) -> BaseMailBox:
    host, port, security = server.imap_host, int(server.imap_port), server.imap_security
    if security == "ssl":
        return MailBox(host, port, timeout=timeout, ssl_context=ssl_context_for(server))
    if security == "starttls":
        if port == 993:
            raise MailConnectError("tls", "Port 993 expects SSL/TLS from the first byte, not STARTTLS. "
                                          "Choose SSL/TLS for port 993, or use port 143 with STARTTLS.")
        return MailBoxStartTls(host, port, timeout=timeout, ssl_context=ssl_context_for(server))
    if security == "none":
        return MailBoxUnencrypted(host, port, timeout=timeout)
    raise MailConnectError("protocol", f"Unknown IMAP security setting {security!r}: "
                                       f"choose SSL/TLS, STARTTLS or none.")


def _imap_greeting_error(exc: Exception, where: str) -> MailConnectError:
    """An IMAP greeting that never came or was not IMAP: say what the other side said."""
    text = str(exc)
    if text.startswith("unexpected response: "):
        said = text.removeprefix("unexpected response: ").strip()
        if said[:2] in ("b'", 'b"'):
            said = said[2:-1]
        return MailConnectError("protocol", f"{where} did not answer like an IMAP server (it said: "
                                            f"{said[:120]}). Is this an IMAP port?")
    return MailConnectError("protocol", f"{where} broke off the IMAP conversation ({text}). Is this an IMAP "
                                        f"port, and is the security setting right?")


def _imap_login_error(exc: UnexpectedCommandStatusError, login: str, where: str, oauth: bool) -> MailConnectError:
    text = server_text(exc.command_result[1]) if exc.command_result else ""
    message = login_refused("The server", login, text, oauth=oauth)
    upper = text.upper()
    if "PRIVACYREQUIRED" in upper or "PLAINTEXT AUTHENTICATION DISALLOWED" in upper:
        message += (" The server wants an encrypted connection before the password: choose STARTTLS "
                    "or SSL/TLS.")
    elif "UNAVAILABLE" in upper:
        # A temporary failure on the server's side says nothing about the password: not "auth",
        # so that a scanner is not blocked for it.
        return MailConnectError("protocol", f"{where} could not check the login for {login} right now: "
                                            f"{text} Try again later.")
    return MailConnectError("auth", message)


def _greeted_box(server: MailServer, limit: float) -> BaseMailBox:
    """Connect and read the greeting (with TLS or STARTTLS as set); failures as ``MailConnectError``."""
    host, port, security = server.imap_host, int(server.imap_port), server.imap_security
    where = f"{host}:{port}"
    try:
        return _imap_box(server, limit)
    except MailConnectError:
        raise
    except imaplib.IMAP4.abort as exc:
        if "TLS not supported" in str(exc):
            raise MailConnectError("tls", f"{where} does not offer STARTTLS. Choose SSL/TLS (usually port "
                                          f"993) or, on a trusted network only, no encryption.") from None
        raise _imap_greeting_error(exc, where) from None
    except imaplib.IMAP4.error as exc:
        raise _imap_greeting_error(exc, where) from None
    except ImapToolsError as exc:
        raise MailConnectError("tls", f"{where} refused to start TLS ({exc}).") from None
    except OSError as exc:
        mapped = network_error(exc, host, port, security, limit, "IMAP")
        if mapped is None:
            raise
        raise mapped from None


def open_imap(server: MailServer, login: str, secret: str | None, *,
              timeout: float | None = None) -> BaseMailBox:
    """Connect to the server's IMAP side and log in; returns the logged-in imap-tools mailbox.

    No folder is selected. ``secret`` is the password, or for an OAuth 2.0 server the
    access token (XOAUTH2). Any failure raises ``MailConnectError``; the caller logs out.
    """
    limit = connect_timeout(timeout)
    host, port, security = server.imap_host, int(server.imap_port), server.imap_security
    where = f"{host}:{port}"
    oauth = (server.auth_method or "password") == "oauth2"
    if oauth and not secret:
        raise MailConnectError("auth", f"The mailbox {login} on {server.name} uses OAuth 2.0 and is not "
                                       f"connected yet: connect the account first (Connect account on "
                                       f"the scanner form).")
    if not login:
        raise MailConnectError("auth", "No login given: enter the mailbox's login (usually its address).")
    box = _greeted_box(server, limit)
    try:
        if oauth:
            box.xoauth2(login, secret, initial_folder=None)
        elif login.isascii() and (secret or "").isascii():
            box.login(login, secret or "", initial_folder=None)
        else:
            # LOGIN can only carry ASCII; AUTHENTICATE PLAIN carries UTF-8.
            box.login_utf8(login, secret or "", initial_folder=None)
        return box
    except MailboxLoginError as exc:
        close_quietly(box)
        raise MailConnectError(*_split(_imap_login_error(exc, login, where, oauth), secret)) from None
    except imaplib.IMAP4.abort as exc:
        close_quietly(box)
        raise MailConnectError("protocol", scrub(f"{where} dropped the connection during the login "
                                                  f"({exc}).", secret)) from None
    except imaplib.IMAP4.error as exc:
        close_quietly(box)
        text = scrub(str(exc), secret)
        raise MailConnectError("auth", login_refused("The server", login, text, oauth=oauth)) from None
    except OSError as exc:
        close_quietly(box)
        mapped = network_error(exc, host, port, security, limit, "IMAP")
        if mapped is None:
            raise
        raise MailConnectError(mapped.kind, scrub(mapped.message, secret)) from None


def _split(err: MailConnectError, secret: str | None) -> tuple[str, str]:
    return err.kind, scrub(err.message, secret)


def close_quietly(box: BaseMailBox) -> None:
    """Drop a connection we give up on, ignoring errors (it may already be gone)."""
    try:
        box.client.shutdown()
    except Exception:  # closing a broken socket may fail in many ways; nothing to do about it
        pass
