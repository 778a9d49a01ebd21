"""Greeting and logging in to a mail server's SMTP side (the *Test connection* check)."""

from __future__ import annotations

import smtplib
import socket
from typing import TYPE_CHECKING

from app.connect.errors import (
    SECURITY_LABELS,
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


def _greet_and_login(smtp: smtplib.SMTP, server: MailServer, login: str | None, secret: str | None) -> None:
    """EHLO (or HELO), STARTTLS when set, and the login when the server needs one and a secret is given."""
    where = f"{server.smtp_host}:{server.smtp_port}"
    security = server.smtp_security
    oauth = (server.auth_method or "password") == "oauth2"
    code, reply = smtp.ehlo()
    if code != 250:
        code, reply = smtp.helo()
        if code != 250:
            raise MailConnectError("protocol", f"{where} did not accept our greeting (EHLO): "
                                               f"{code} {server_text(reply)}")
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


def _require_oauth_token(server: MailServer, login: str | None, secret: str | None) -> None:
    """An OAuth 2.0 server that needs an SMTP login cannot be greeted without an access token."""
    if (server.auth_method or "password") == "oauth2" and server.smtp_auth and not secret:
        raise MailConnectError("auth", f"The mailbox {login} on {server.name} uses OAuth 2.0 and is not "
                                       f"connected yet: connect the account first.")


def check_smtp(server: MailServer, login: str | None, secret: str | None, *,
               timeout: float | None = None) -> None:
    """Greet the server's SMTP side (EHLO, STARTTLS when set) and log in when it needs one.

    Returns quietly when all went well; raises ``MailConnectError`` otherwise.
    The login is tried only when the server is set to need authentication and a
    secret is given (the password, or the access token of an OAuth 2.0 server).
    """
    limit = connect_timeout(timeout)
    host, port, security = server.smtp_host, int(server.smtp_port), server.smtp_security
    where = f"{host}:{port}"
    _require_oauth_token(server, login, secret)
    smtp = None
    try:
        smtp = _smtp_connect(server, limit)
        _greet_and_login(smtp, server, login, secret)
    except MailConnectError as exc:
        raise MailConnectError(exc.kind, scrub(exc.message, secret)) from None
    except smtplib.SMTPAuthenticationError as exc:
        text = server_text(exc.smtp_error)
        oauth = (server.auth_method or "password") == "oauth2"
        raise MailConnectError("auth", scrub(login_refused("The SMTP server", login or "", f"{exc.smtp_code} {text}",
                                                           oauth=oauth), secret)) from None
    except smtplib.SMTPConnectError as exc:
        code = "" if exc.smtp_code == -1 else f"{exc.smtp_code} "
        raise MailConnectError("protocol", f"{where} did not greet like an SMTP server (it said: "
                                           f"{code}{server_text(exc.smtp_error)[:120]}). Is this an SMTP "
                                           f"port?") from None
    except smtplib.SMTPServerDisconnected as exc:
        raise MailConnectError("protocol", f"{where} closed the connection before the SMTP conversation "
                                           f"ended ({exc or 'no reason given'}). Check the port and the "
                                           f"security setting ({SECURITY_LABELS.get(security, security)})."
                               ) from None
    except smtplib.SMTPNotSupportedError as exc:
        raise MailConnectError("protocol", f"{where} does not support what we asked: {exc}") from None
    except smtplib.SMTPResponseException as exc:
        raise MailConnectError("protocol", scrub(f"{where} answered with an error: {exc.smtp_code} "
                                                  f"{server_text(exc.smtp_error)}", secret)) from None
    except smtplib.SMTPException as exc:
        raise MailConnectError("protocol", scrub(f"The SMTP conversation with {where} failed: {exc}",
                                                  secret)) from None
    except OSError as exc:
        mapped = network_error(exc, host, port, security, limit, "SMTP")
        if mapped is None:
            raise
        raise MailConnectError(mapped.kind, scrub(mapped.message, secret)) from None
    finally:
        if smtp is not None:
            try:
                smtp.quit()
            except Exception:  # the server may already have hung up; the check's outcome stands
                smtp.close()
