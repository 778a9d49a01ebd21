"""Connections to mail servers, and their failures in words a person understands.

Everything that talks to an IMAP or SMTP server on behalf of the product goes
through here: the scanner (``open_imap``), the unread counter, the *Test
connection* button (``test_connection``). A failure always comes out as one
``MailConnectError`` whose ``kind`` says what went wrong (DNS, refused, timeout,
TLS, login, protocol) and whose text says it plainly, never with the password.
"""

from __future__ import annotations

import errno
import imaplib
import smtplib
import socket
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import current_app, has_app_context
from imap_tools import BaseMailBox, MailBox, MailBoxStartTls, MailBoxUnencrypted
from imap_tools.errors import ImapToolsError, MailboxLoginError, UnexpectedCommandStatusError

if TYPE_CHECKING:
    from app.models import MailServer

KINDS = ("dns", "refused", "timeout", "tls", "auth", "protocol")
SECURITY_LABELS = {"ssl": "SSL/TLS", "starttls": "STARTTLS", "none": "no encryption"}
DEFAULT_TIMEOUT = 10.0


class MailConnectError(Exception):
    """A mail server could not be reached or refused us; ``str()`` is meant for people."""

    def __init__(self, kind: str, message: str) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}")
        super().__init__(message)
        self.kind = kind
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class CheckResult:
    """One line of a *Test connection* report."""

    name: str
    ok: bool
    message: str


# --------------------------------------------------------------------------- helpers


def _timeout(timeout: float | None) -> float:
    if timeout is not None:
        return float(timeout)
    if has_app_context():
        return float(current_app.config.get("MAIL_CONNECT_TIMEOUT", DEFAULT_TIMEOUT))
    return DEFAULT_TIMEOUT


def ssl_context_for(server: MailServer) -> ssl.SSLContext:
    """A TLS context that checks certificates, unless the server is explicitly set not to."""
    context = ssl.create_default_context()
    if server.validate_cert is False:
        # An administrator's explicit, visible choice per server (self-signed in-house servers).
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _scrub(text: str, secret: str | None) -> str:
    """Remove the secret from a message, should a server ever echo it back."""
    text = str(text)
    if secret and len(secret) >= 3:
        text = text.replace(secret, "••••")
    return text


def _server_text(data) -> str:
    """The human part of a server's reply (bytes, list of bytes, or text)."""
    if isinstance(data, (list, tuple)):
        parts = [_server_text(d) for d in data if d is not None]
        return " ".join(p for p in parts if p)
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace").strip()
    return str(data or "").strip()


def _network_error(exc: BaseException, host: str, port: int, security: str, timeout: float,
                   protocol: str) -> MailConnectError | None:
    """Map a socket/TLS exception to a ``MailConnectError``, or ``None`` if it is not one."""
    where = f"{host}:{port}"
    if isinstance(exc, socket.gaierror):
        if exc.errno in (socket.EAI_AGAIN,):
            return MailConnectError("dns", f"The name {host} could not be looked up: the DNS server did "
                                           f"not answer. Check the network or try again later.")
        return MailConnectError("dns", f"The name {host} could not be found (DNS). Check the spelling "
                                       f"of the {protocol} host.")
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = getattr(exc, "verify_message", None) or str(exc)
        return MailConnectError("tls", f"The certificate of {where} failed verification ({reason}). "
                                       f"If this server uses a self-signed or internal certificate on "
                                       f"purpose, an administrator can turn off \"Validate certificate\" "
                                       f"for this server; otherwise check the host name.")
    if isinstance(exc, ssl.SSLError):
        reason = getattr(exc, "reason", None) or str(exc)
        if reason in ("WRONG_VERSION_NUMBER", "UNKNOWN_PROTOCOL", "HTTP_REQUEST", "RECORD_LAYER_FAILURE") \
                or "wrong version number" in str(exc).lower():
            return MailConnectError("tls", f"{where} does not speak TLS: it answered in plain text, so "
                                           f"this looks like a port without encryption. Choose STARTTLS or "
                                           f"none for this port, or use the SSL/TLS port (IMAP usually 993, "
                                           f"SMTP 465).")
        return MailConnectError("tls", f"The TLS handshake with {where} failed ({reason}). Check the port "
                                       f"and the security setting ({SECURITY_LABELS.get(security, security)}).")
    if isinstance(exc, (TimeoutError, socket.timeout)):
        hint = ""
        if security != "ssl" and port in (993, 465):
            hint = (f" Port {port} usually expects SSL/TLS from the first byte: try the SSL/TLS "
                    f"security setting.")
        return MailConnectError("timeout", f"No answer from {where} within {timeout:g} seconds. A firewall "
                                           f"may be dropping the connection, or the host or port is wrong."
                                           + hint)
    if isinstance(exc, ConnectionRefusedError):
        return MailConnectError("refused", f"Nothing answers at {where} — connection refused. Is the port "
                                           f"right and the server running?")
    if isinstance(exc, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
        return MailConnectError("protocol", f"{where} closed the connection unexpectedly. Check the port and "
                                            f"the security setting ({SECURITY_LABELS.get(security, security)}).")
    if isinstance(exc, OSError) and exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH,
                                                  errno.EADDRNOTAVAIL):
        return MailConnectError("refused", f"{where} cannot be reached from this machine ({exc.strerror}). "
                                           f"Check the host and the network.")
    if isinstance(exc, OSError) and not isinstance(exc, (imaplib.IMAP4.error, smtplib.SMTPException)):
        return MailConnectError("refused", f"Cannot connect to {where}: {exc.strerror or exc}.")
    return None


# --------------------------------------------------------------------------- IMAP


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


def _imap_login_error(exc: UnexpectedCommandStatusError, login: str, where: str) -> MailConnectError:
    text = _server_text(exc.command_result[1]) if exc.command_result else ""
    message = (f"The server refused the login for {login}: {text or 'no reason given.'} "
               "Check the login and the password.")
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


def open_imap(server: MailServer, login: str, secret: str | None, *,
              timeout: float | None = None) -> BaseMailBox:
    """Connect to the server's IMAP side and log in; returns the logged-in imap-tools mailbox.

    No folder is selected. ``secret`` is the password, or for an OAuth 2.0 server the
    access token (XOAUTH2). Any failure raises ``MailConnectError``; the caller logs out.
    """
    limit = _timeout(timeout)
    host, port, security = server.imap_host, int(server.imap_port), server.imap_security
    where = f"{host}:{port}"
    oauth = (server.auth_method or "password") == "oauth2"
    if oauth and not secret:
        raise MailConnectError("auth", f"The mailbox {login} on {server.name} uses OAuth 2.0 and is not "
                                       f"connected yet: connect the account first (Connect account on "
                                       f"the scanner form).")
    if not login:
        raise MailConnectError("auth", "No login given: enter the mailbox's login (usually its address).")
    try:
        box = _imap_box(server, limit)
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
        mapped = _network_error(exc, host, port, security, limit, "IMAP")
        if mapped is None:
            raise
        raise mapped from None
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
        _close(box)
        raise MailConnectError(*_split(_imap_login_error(exc, login, where), secret)) from None
    except imaplib.IMAP4.abort as exc:
        _close(box)
        raise MailConnectError("protocol", _scrub(f"{where} dropped the connection during the login "
                                                  f"({exc}).", secret)) from None
    except imaplib.IMAP4.error as exc:
        _close(box)
        text = _scrub(str(exc), secret)
        raise MailConnectError("auth", f"The server refused the login for {login}: {text} "
                                       "Check the login and the password.") from None
    except OSError as exc:
        _close(box)
        mapped = _network_error(exc, host, port, security, limit, "IMAP")
        if mapped is None:
            raise
        raise MailConnectError(mapped.kind, _scrub(mapped.message, secret)) from None


def _split(err: MailConnectError, secret: str | None) -> tuple[str, str]:
    return err.kind, _scrub(err.message, secret)


def _close(box: BaseMailBox) -> None:
    """Drop a connection we give up on, ignoring errors (it may already be gone)."""
    try:
        box.client.shutdown()
    except Exception:  # closing a broken socket may fail in many ways; nothing to do about it
        pass


# --------------------------------------------------------------------------- SMTP


def _smtp_connect(server: MailServer, limit: float) -> smtplib.SMTP:
    host, port, security = server.smtp_host, int(server.smtp_port), server.smtp_security
    # Our own name for EHLO without a DNS lookup (smtplib's default getfqdn() can hang where DNS is broken).
    me = socket.gethostname() or "localhost"
    if security == "ssl":
        return smtplib.SMTP_SSL(host, port, local_hostname=me, timeout=limit, context=ssl_context_for(server))
    if security in ("starttls", "none"):
        return smtplib.SMTP(host, port, local_hostname=me, timeout=limit)
    raise MailConnectError("protocol", f"Unknown SMTP security setting {security!r}: "
                                       f"choose SSL/TLS, STARTTLS or none.")


def check_smtp(server: MailServer, login: str | None, secret: str | None, *,
               timeout: float | None = None) -> None:
    """Greet the server's SMTP side (EHLO, STARTTLS when set) and log in when it needs one.

    Returns quietly when all went well; raises ``MailConnectError`` otherwise.
    The login is tried only when the server is set to need authentication and a
    secret is given (the password, or the access token of an OAuth 2.0 server).
    """
    limit = _timeout(timeout)
    host, port, security = server.smtp_host, int(server.smtp_port), server.smtp_security
    where = f"{host}:{port}"
    oauth = (server.auth_method or "password") == "oauth2"
    if oauth and server.smtp_auth and not secret:
        raise MailConnectError("auth", f"The mailbox {login} on {server.name} uses OAuth 2.0 and is not "
                                       f"connected yet: connect the account first.")
    smtp = None
    try:
        smtp = _smtp_connect(server, limit)
        code, reply = smtp.ehlo()
        if code != 250:
            code, reply = smtp.helo()
            if code != 250:
                raise MailConnectError("protocol", f"{where} did not accept our greeting (EHLO): "
                                                   f"{code} {_server_text(reply)}")
        if security == "starttls":
            if not smtp.has_extn("starttls"):
                raise MailConnectError("tls", f"{where} does not offer STARTTLS. Choose SSL/TLS (usually "
                                              f"port 465) or, on a trusted network only, no encryption.")
            smtp.starttls(context=ssl_context_for(server))
            smtp.ehlo()
        if server.smtp_auth and secret:
            if not smtp.has_extn("auth"):
                hint = " Choose STARTTLS: many servers offer AUTH only on an encrypted connection." \
                    if security == "none" else ""
                raise MailConnectError("auth", f"{where} does not offer a login (no AUTH). If this server "
                                               f"needs no login, untick \"SMTP needs authentication\"."
                                               + hint)
            if oauth:
                token = f"user={login}\1auth=Bearer {secret}\1\1"
                smtp.auth("XOAUTH2", lambda challenge=None: token, initial_response_ok=True)
            else:
                smtp.login(login or "", secret)
    except MailConnectError as exc:
        raise MailConnectError(exc.kind, _scrub(exc.message, secret)) from None
    except smtplib.SMTPAuthenticationError as exc:
        text = _server_text(exc.smtp_error)
        raise MailConnectError("auth", _scrub(f"The SMTP server refused the login for {login}: "
                                              f"{exc.smtp_code} {text} Check the login and the password.",
                                              secret)) from None
    except smtplib.SMTPConnectError as exc:
        code = "" if exc.smtp_code == -1 else f"{exc.smtp_code} "
        raise MailConnectError("protocol", f"{where} did not greet like an SMTP server (it said: "
                                           f"{code}{_server_text(exc.smtp_error)[:120]}). Is this an SMTP "
                                           f"port?") from None
    except smtplib.SMTPServerDisconnected as exc:
        raise MailConnectError("protocol", f"{where} closed the connection before the SMTP conversation "
                                           f"ended ({exc or 'no reason given'}). Check the port and the "
                                           f"security setting ({SECURITY_LABELS.get(security, security)})."
                               ) from None
    except smtplib.SMTPNotSupportedError as exc:
        raise MailConnectError("protocol", f"{where} does not support what we asked: {exc}") from None
    except smtplib.SMTPResponseException as exc:
        raise MailConnectError("protocol", _scrub(f"{where} answered with an error: {exc.smtp_code} "
                                                  f"{_server_text(exc.smtp_error)}", secret)) from None
    except smtplib.SMTPException as exc:
        raise MailConnectError("protocol", _scrub(f"The SMTP conversation with {where} failed: {exc}",
                                                  secret)) from None
    except OSError as exc:
        mapped = _network_error(exc, host, port, security, limit, "SMTP")
        if mapped is None:
            raise
        raise MailConnectError(mapped.kind, _scrub(mapped.message, secret)) from None
    finally:
        if smtp is not None:
            try:
                smtp.quit()
            except Exception:  # the server may already have hung up; the check's outcome stands
                smtp.close()


# --------------------------------------------------------------------------- Test connection


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
            _close(box)
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
