"""How connections to mail servers fail, in words a person understands.

Everything that talks to an IMAP or SMTP server on behalf of the product goes
through ``app.connect``: the scanner, the watcher, the unread counter, the
*Test connection* button. A failure always comes out as one ``MailConnectError``
whose ``kind`` says what went wrong (DNS, refused, timeout, TLS, login,
protocol) and whose text says it plainly, never with the password.
"""

from __future__ import annotations

import errno
import imaplib
import smtplib
import socket
import ssl
from typing import TYPE_CHECKING

from flask import current_app, has_app_context

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


class CredentialError(Exception):
    """A mailbox's login secret cannot be had; ``str()`` is for people and never contains a secret.

    ``kind`` follows ``MailConnectError`` kinds, so a scan knows whether a retry
    may help: "auth" (it won't) or "refused" / "timeout" / "protocol".
    """

    def __init__(self, message: str, kind: str = "auth") -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind


# --------------------------------------------------------------------------- helpers


def connect_timeout(timeout: float | None) -> float:
    """Seconds a connection attempt may take: the given value, else MAIL_CONNECT_TIMEOUT."""
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


def scrub(text: str, secret: str | None) -> str:
    """Remove the secret from a message, should a server ever echo it back."""
    text = str(text)
    if secret and len(secret) >= 3:
        text = text.replace(secret, "••••")
    return text


def server_text(data: object) -> str:
    """The human part of a server's reply (bytes, list of bytes, or text)."""
    if isinstance(data, (list, tuple)):
        parts = [server_text(d) for d in data if d is not None]
        return " ".join(p for p in parts if p)
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace").strip()
    return str(data or "").strip()


def network_error(exc: BaseException, host: str, port: int, security: str, timeout: float,
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


def login_refused(who: str, login: str, said: str, *, oauth: bool) -> str:
    """The words of a refused login: a password to check, or an OAuth 2.0 authorization to renew.

    ``said`` is the server's own reason; it gets its full stop, so the advice after it reads
    as a sentence of its own.
    """
    said = " ".join(said.split()) or "no reason given"
    if not said.endswith((".", "!", "?")):
        said += "."
    if oauth:
        return (f"{who} refused the authorization for {login}: {said} The mailbox's access token was not "
                f"accepted: press Connect account on the scanner to authorize the mailbox again.")
    return f"{who} refused the login for {login}: {said} Check the login and the password."
