"""Mail servers: validation, create / update / delete, and Test connection.

Shared by the admin pages and the ``flask servers`` commands. Every message is
meant to be shown as is: it says what is wrong and what to do. The OAuth client
secret is encrypted at rest and never handed back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from app.connect import credentials
from app.connect.checks import CheckResult, smtp_check, test_connection
from app.connect.errors import CredentialError
from app.crypto import app_key, encrypt_secret
from app.extensions import db
from app.models import MailAccount, MailServer
from app.models.base import utcnow
from app.models.mail import AUTH_METHODS, SECURITY_CHOICES
from app.services import audit
from app.services.validation import (
    FieldErrors,
    RowId,
    clean_bool,
    clean_choice,
    clean_host,
    clean_int,
    clean_port,
    clean_url,
    collect,
    db_id,
    has_control_chars,
    text,
)

SECURITY_LABELS = {"ssl": "SSL/TLS", "starttls": "STARTTLS", "none": "No encryption"}
AUTH_LABELS = {"password": "Password", "oauth2": "OAuth 2.0 (XOAUTH2)"}

# Presets fill the URLs and scopes an administrator leaves empty (on save, and in the form as soon as the
# provider is picked, by static/servers.js); the form also takes the hosts when none is typed yet.
OAUTH_PROVIDERS = {
    "microsoft": {
        "label": "Microsoft 365",
        "authorize_url": "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
        "token_url": "https://login.microsoftonline.com/common/oauth2/v2.0/token",
        "scopes": "offline_access https://outlook.office.com/IMAP.AccessAsUser.All "
                  "https://outlook.office.com/SMTP.Send",
        "hosts": {"imap_host": "outlook.office365.com", "imap_port": "993", "imap_security": "ssl",
                  "smtp_host": "smtp.office365.com", "smtp_port": "587", "smtp_security": "starttls"},
    },
    "google": {
        "label": "Google",
        "authorize_url": "https://accounts.google.com/o/oauth2/v2/auth",
        "token_url": "https://oauth2.googleapis.com/token",
        "scopes": "https://mail.google.com/",
        "hosts": {"imap_host": "imap.gmail.com", "imap_port": "993", "imap_security": "ssl",
                  "smtp_host": "smtp.gmail.com", "smtp_port": "465", "smtp_security": "ssl"},
    },
    "generic": {"label": "Other (generic OAuth 2.0)", "authorize_url": "", "token_url": "", "scopes": ""},
}

DEFAULTS = {
    "imap_port": 993, "imap_security": "ssl", "smtp_port": 465, "smtp_security": "ssl",
    "smtp_auth": True, "validate_cert": True, "auth_method": "password", "visible": True,
    "max_connections": 10,
}
MAX_CONNECTIONS = (2, 1000)

# Fields shown in the audit trail when they change (the client secret only as "changed").
_AUDITED = ("name", "imap_host", "imap_port", "imap_security", "smtp_host", "smtp_port", "smtp_security",
            "smtp_auth", "validate_cert", "auth_method", "oauth_provider", "oauth_client_id",
            "oauth_authorize_url", "oauth_token_url", "oauth_scopes", "oauth_redirect_uri", "visible",
            "max_connections")

# The OAuth 2.0 URLs of a server and their names in messages; the first two are required.
_OAUTH_URLS = (("oauth_authorize_url", "authorize URL"), ("oauth_token_url", "token URL"),
               ("oauth_redirect_uri", "redirect URI"))


class ServerError(FieldErrors):
    """A mail server cannot be saved, deleted or tested as asked; a message per field."""


class ServerNotFound(ServerError):
    """No mail server with that id or name."""


class ServerInUse(ServerError):
    """The server still has scanners on it."""


# --------------------------------------------------------------------------- validation


def _given(data: Mapping, server: MailServer | None, key: str) -> Any:
    """The submitted value of ``key``, else the server's current one (update), else the default (create)."""
    if key in data:
        return data[key]
    if server is not None:
        return getattr(server, key)
    return DEFAULTS.get(key)


def _name_problem(name: str, server: MailServer | None) -> str | None:
    """What is wrong with a server's name (it must be unique, ignoring case), or None."""
    if not name:
        return "A name is required, e.g. \"Corporate mail\"."
    if len(name) > 100:
        return "The name is too long (at most 100 characters)."
    if has_control_chars(name):
        return "The name cannot contain control characters."
    query = select(MailServer.id).where(func.lower(MailServer.name) == name.lower())
    if server is not None and server.id is not None:
        query = query.where(MailServer.id != server.id)
    if db.session.scalar(query) is not None:
        return f"A mail server named {name!r} already exists: choose another name."
    return None


def _clean_endpoints(given: Callable[[str], Any], errors: dict[str, str]) -> dict:
    """Host, port and security of the IMAP and SMTP sides."""
    clean: dict = {}
    for side, label in (("imap", "IMAP"), ("smtp", "SMTP")):
        clean[f"{side}_host"] = collect(errors, f"{side}_host", clean_host, given(f"{side}_host"), f"{label} host")
        clean[f"{side}_port"] = collect(errors, f"{side}_port", clean_port, given(f"{side}_port"), f"{label} port")
        clean[f"{side}_security"] = collect(errors, f"{side}_security", clean_choice, given(f"{side}_security"),
                                           SECURITY_CHOICES, f"{label} security")
    for side, ssl_port, starttls_port in (("imap", 993, 143), ("smtp", 465, 587)):
        if clean[f"{side}_security"] == "starttls" and clean[f"{side}_port"] == ssl_port:
            errors[f"{side}_security"] = (f"Port {ssl_port} expects SSL/TLS from the first byte: choose SSL/TLS, "
                                          f"or use port {starttls_port} with STARTTLS.")
    return clean


def _with_preset(value: str, preset_key: str, provider: str | None, method: str | None) -> str:
    """An OAuth setting with the provider's preset applied.

    Another provider's preset, left over after switching providers, is
    dropped; on an OAuth 2.0 server an empty URL or scope list takes this
    provider's preset (the redirect URI has none: it defaults to our callback).
    """
    if value and provider in OAUTH_PROVIDERS and any(
            value == preset.get(preset_key) for name, preset in OAUTH_PROVIDERS.items() if name != provider):
        value = ""
    if not value and method == "oauth2" and preset_key != "redirect_uri":
        value = OAUTH_PROVIDERS.get(provider or "", {}).get(preset_key, "")
    return value


def _clean_oauth(given: Callable[[str], Any], typed_secret: object, method: str | None,
                 errors: dict[str, str]) -> dict:
    """The OAuth 2.0 settings, each on its own; whether OAuth 2.0 has all it needs is ``_require_oauth``."""
    provider = text(given("oauth_provider")).lower() or None
    client_id = text(given("oauth_client_id")) or None
    if client_id and (len(client_id) > 255 or has_control_chars(client_id)):
        errors["oauth_client_id"] = "The client id is too long or contains control characters."
    clean: dict = {"oauth_provider": provider, "oauth_client_id": client_id}
    for key, what in _OAUTH_URLS:
        value = _with_preset(text(given(key)), key.removeprefix("oauth_"), provider, method)
        clean[key] = (collect(errors, key, clean_url, value, what) if value else None) or None
    scopes = _with_preset(" ".join(text(given("oauth_scopes")).split()), "scopes", provider, method)
    if len(scopes) > 500 or has_control_chars(scopes):
        errors["oauth_scopes"] = "The scopes are too long (at most 500 characters) or contain control characters."
    clean["oauth_scopes"] = scopes or None
    # Only what was typed: an empty client secret on update keeps the stored one.
    secret = typed_secret.strip() if isinstance(typed_secret, str) else None
    if secret and (len(secret) > 1000 or has_control_chars(secret)):
        errors["oauth_client_secret"] = "The client secret is too long or contains control characters."
    clean["oauth_client_secret"] = secret or None
    return clean


def _require_oauth(clean: dict, server: MailServer | None, errors: dict[str, str]) -> None:
    """An OAuth 2.0 server needs a known provider, the client id and secret, both URLs and the scopes."""
    provider = clean["oauth_provider"]
    if clean["auth_method"] != "oauth2":
        if provider and provider not in OAUTH_PROVIDERS:
            errors["oauth_provider"] = "Unknown OAuth provider."
        return
    if provider not in OAUTH_PROVIDERS:
        errors["oauth_provider"] = ("Choose the OAuth provider: "
                                    + ", ".join(p["label"] for p in OAUTH_PROVIDERS.values()) + ".")
    if not clean["oauth_client_id"]:
        errors.setdefault("oauth_client_id", "OAuth 2.0 needs the client id of the app registered with the provider.")
    has_stored = server is not None and bool(server.oauth_client_secret_enc)
    if not clean["oauth_client_secret"] and not has_stored:
        errors.setdefault("oauth_client_secret", "OAuth 2.0 needs the client secret of the app registered with "
                                                 "the provider.")
    for key, what in _OAUTH_URLS[:2]:
        if not clean[key]:
            errors.setdefault(key, f"OAuth 2.0 needs the provider's {what}.")
    if not clean["oauth_scopes"]:
        errors.setdefault("oauth_scopes", "OAuth 2.0 needs the scopes to ask for (space separated).")


def validate(data: Mapping, *, server: MailServer | None = None) -> dict:
    """Check every field of a server; returns clean values or raises ``ServerError``.

    ``data`` holds the form's or the CLI's values; missing keys take the
    defaults (on create) or the server's current values (on update). An empty
    ``oauth_client_secret`` on update keeps the stored one.
    """
    given = partial(_given, data, server)
    errors: dict[str, str] = {}
    name = text(given("name"))
    problem = _name_problem(name, server)
    if problem:
        errors["name"] = problem
    clean: dict = {"name": name, **_clean_endpoints(given, errors)}
    for key in ("smtp_auth", "validate_cert", "visible"):
        clean[key] = clean_bool(given(key))
    clean["max_connections"] = collect(errors, "max_connections", clean_int, given("max_connections"),
                                       "Connections per mailbox", *MAX_CONNECTIONS)
    clean["auth_method"] = collect(errors, "auth_method", clean_choice, given("auth_method") or "password",
                                   AUTH_METHODS, "authentication method")
    clean.update(_clean_oauth(given, data.get("oauth_client_secret"), clean["auth_method"], errors))
    _require_oauth(clean, server, errors)
    if errors:
        raise ServerError(errors)
    return clean


# --------------------------------------------------------------------------- queries


def get_server(server_id: RowId | None) -> MailServer:
    """The server with that id, or ``ServerNotFound``."""
    number = db_id(server_id)
    server = db.session.get(MailServer, number) if number else None
    if server is None:
        raise ServerNotFound("There is no such mail server (it may have been deleted).")
    return server


def get_server_by_name(name: str) -> MailServer:
    """The server with that name (case-insensitive), or ``ServerNotFound``."""
    server = db.session.scalar(select(MailServer).where(func.lower(MailServer.name) == (name or "").lower()))
    if server is None:
        names = ", ".join(db.session.scalars(select(MailServer.name).order_by(MailServer.name))) or "none yet"
        raise ServerNotFound(f"There is no mail server named {name!r} (known: {names}).")
    return server


def list_servers() -> list[MailServer]:
    """Every server with the scanners on it, by name."""
    return list(db.session.scalars(
        select(MailServer).options(selectinload(MailServer.accounts)).order_by(MailServer.name)))


def scanners_using(server: MailServer) -> list[MailAccount]:
    """The scanners (mailboxes) configured on this server."""
    return list(db.session.scalars(
        select(MailAccount).where(MailAccount.server_id == server.id).order_by(MailAccount.name)))


# --------------------------------------------------------------------------- changes


def _apply(server: MailServer, clean: dict) -> list[str]:
    """Copy clean values onto the server; returns the audit lines of what changed."""
    changes = []
    for key in _AUDITED:
        old = getattr(server, key)
        new = clean[key]
        if old != new:
            changes.append(f"{key}: {old!r} → {new!r}" if server.id else f"{key}={new!r}")
            setattr(server, key, new)
    if clean.get("oauth_client_secret"):
        server.oauth_client_secret_enc = encrypt_secret(app_key(), clean["oauth_client_secret"])
        changes.append("oauth client secret changed" if server.id else "oauth client secret set")
    return changes


def create_server(data: Mapping) -> MailServer:
    """Validate and add a server; raises ``ServerError`` with a message per field."""
    clean = validate(data)
    server = MailServer()
    changes = _apply(server, clean)
    db.session.add(server)
    db.session.flush()
    audit.record("mail_server.create", f"mail server {server.id} ({server.name})", "; ".join(changes))
    db.session.commit()
    return server


def update_server(server_id: RowId, data: Mapping) -> MailServer:
    """Validate and change a server; an empty client secret keeps the stored one."""
    server = get_server(server_id)
    clean = validate(data, server=server)
    changes = _apply(server, clean)
    if changes:
        server.updated_at = utcnow()
        audit.record("mail_server.update", f"mail server {server.id} ({server.name})", "; ".join(changes))
    db.session.commit()
    return server


def delete_server(server_id: RowId) -> str:
    """Delete a server no scanner uses; returns its name. ``ServerInUse`` names the scanners."""
    server = get_server(server_id)
    users = scanners_using(server)
    if users:
        names = ", ".join(f"\"{a.name}\"" for a in users)
        plural = "scanners" if len(users) > 1 else "scanner"
        raise ServerInUse(f"The mail server \"{server.name}\" cannot be deleted: the {plural} {names} "
                          f"use{'' if len(users) > 1 else 's'} it. Move {'them' if len(users) > 1 else 'it'} "
                          f"to another server or delete {'them' if len(users) > 1 else 'it'} first "
                          f"(Mail tools → Mail scanner).")
    name = server.name
    audit.record("mail_server.delete", f"mail server {server.id} ({name})",
                 f"imap={server.imap_host}:{server.imap_port} smtp={server.smtp_host}:{server.smtp_port}")
    db.session.delete(server)
    db.session.commit()
    return name


# --------------------------------------------------------------------------- Test connection


def _stored_credentials(server: MailServer, account_id: RowId) -> tuple[MailAccount, str, str | None]:
    """The scanner on ``server`` with its login and login secret (a password, or a fresh access token)."""
    number = db_id(account_id)
    account = db.session.get(MailAccount, number) if number else None
    if account is None or account.server_id != server.id:
        raise ServerError("That scanner does not use this server: choose one from the list.", "account_id")
    try:
        secret = credentials.login_secret(account)
    except CredentialError as exc:
        what = "authorization" if server.auth_method == "oauth2" else "stored credentials"
        raise ServerError(f"The {what} of the scanner \"{account.name}\" cannot be used: {exc}",
                          "account_id") from exc
    return account, account.login, secret


def _typed_credentials(login: str | None, password: str | None) -> tuple[str, str | None]:
    """A typed login and password, checked; the password is for this test only."""
    login = text(login)
    if not login:
        raise ServerError("Type the login of a mailbox on this server (usually its e-mail address).", "login")
    if len(login) > 255 or has_control_chars(login):
        raise ServerError("The login is too long or contains control characters.", "login")
    if password is not None and (len(password) > 1000 or any(ch in password for ch in "\r\n\0")):
        raise ServerError("The password is too long or contains line breaks.", "password")
    return login, password or None


def _untestable_login(server: MailServer, login: str, secret: str | None, from_scanner: bool,
                      timeout: float | None) -> list[CheckResult] | None:
    """The report when the IMAP login cannot be tried with what was given (SMTP is greeted if it can be)."""
    if server.auth_method == "oauth2" and not from_scanner:
        # A typed password means nothing to an OAuth 2.0 server; its logins use a connected scanner's token.
        imap = CheckResult("IMAP login", False, "This server signs in with OAuth 2.0, not a password: choose a "
                                                "connected scanner's authorization to test the login.")
        if server.smtp_auth:
            return [imap, CheckResult("SMTP", False, "Not tested: the SMTP login also needs a connected "
                                                     "scanner's authorization.")]
        return [imap, smtp_check(server, login, None, timeout=timeout)]
    if server.auth_method == "password" and not secret:
        imap = CheckResult("IMAP login", False, "No password given: type the mailbox's password to test "
                                                "the IMAP login (it is used for this test only).")
        return [imap, smtp_check(server, login, None, timeout=timeout)]
    return None


def test_server(server_id: RowId, *, login: str | None = None, password: str | None = None,
                account_id: RowId | None = None, timeout: float | None = None) -> list[CheckResult]:
    """Run *Test connection* with typed credentials, or with a scanner's stored ones.

    The password is used for this test only, never stored. A scanner blocked
    after repeated login failures is unblocked when its stored login works again.
    """
    server = get_server(server_id)
    account = None
    if account_id not in (None, "", 0, "0"):
        account, login, secret = _stored_credentials(server, account_id)
    else:
        login, secret = _typed_credentials(login, password)
    untestable = _untestable_login(server, login, secret, account is not None, timeout)
    if untestable is not None:
        return untestable
    results = test_connection(server, login, secret, timeout=timeout)
    if account is not None and results[0].ok and account.health == "blocked":
        account.health, account.blocked_reason, account.login_failures = "active", None, 0
        audit.record("mail_scanner.unblock", f"mail scanner {account.id} ({account.name})",
                     "a test connection from the mail server page succeeded")
        db.session.commit()
        results[0] = CheckResult(results[0].name, True,
                                 results[0].message + f" The scanner \"{account.name}\" was blocked and "
                                                      f"is now unblocked.")
    return results


# pytest collects module-level names starting with "test"; this one is not a test.
test_server.__test__ = False  # type: ignore[attr-defined]
