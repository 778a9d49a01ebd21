"""Mail servers (SPEC §1): validation, create / update / delete, and Test connection.

Shared by the admin pages and the ``flask servers`` commands. Every message is
meant to be shown as is: it says what is wrong and what to do. The OAuth client
secret is encrypted at rest and never handed back.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Mapping
from urllib.parse import urlsplit

import idna
from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from app.connect import credentials
from app.connect.checks import CheckResult, smtp_check, test_connection
from app.connect.errors import CredentialError
from app.crypto import SecretError, decrypt_secret, encrypt_secret
from app.extensions import db
from app.models import MailAccount, MailServer
from app.models.base import utcnow
from app.models.mail import AUTH_METHODS, SECURITY_CHOICES
from app.services import audit

SECURITY_LABELS = {"ssl": "SSL/TLS", "starttls": "STARTTLS", "none": "No encryption"}
AUTH_LABELS = {"password": "Password", "oauth2": "OAuth 2.0 (XOAUTH2)"}

# Presets fill the URLs and scopes an administrator leaves empty.
OAUTH_PROVIDERS = {
    "microsoft": {
        "label": "Microsoft 365",
        "authorize_url": "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
        "token_url": "https://login.microsoftonline.com/common/oauth2/v2.0/token",
        "scopes": "offline_access https://outlook.office.com/IMAP.AccessAsUser.All "
                  "https://outlook.office.com/SMTP.Send",
    },
    "google": {
        "label": "Google",
        "authorize_url": "https://accounts.google.com/o/oauth2/v2/auth",
        "token_url": "https://oauth2.googleapis.com/token",
        "scopes": "https://mail.google.com/",
    },
    "generic": {"label": "Other (generic OAuth 2.0)", "authorize_url": "", "token_url": "", "scopes": ""},
}

DEFAULTS = {
    "imap_port": 993, "imap_security": "ssl", "smtp_port": 465, "smtp_security": "ssl",
    "smtp_auth": True, "validate_cert": True, "auth_method": "password", "visible": True,
}

# Fields shown in the audit trail when they change (the client secret only as "changed").
_AUDITED = ("name", "imap_host", "imap_port", "imap_security", "smtp_host", "smtp_port", "smtp_security",
            "smtp_auth", "validate_cert", "auth_method", "oauth_provider", "oauth_client_id",
            "oauth_authorize_url", "oauth_token_url", "oauth_scopes", "oauth_redirect_uri", "visible")

_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


class ServerError(ValueError):
    """A mail server cannot be saved, deleted or tested as asked.

    ``errors`` maps a field name to its message; ``str()`` joins them for the CLI and flashes.
    """

    def __init__(self, errors: dict[str, str] | str, field: str = "__all__"):
        if isinstance(errors, str):
            errors = {field: errors}
        self.errors = errors
        super().__init__(" ".join(errors.values()))


class ServerNotFound(ServerError):
    """No mail server with that id or name."""


class ServerInUse(ServerError):
    """The server still has scanners on it."""


# --------------------------------------------------------------------------- validation


def _control_chars(value: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in value)


def _text(value) -> str:
    return "" if value is None else str(value).strip()


def clean_host(value, what: str) -> str:
    """A host name or IP address, or raise ``ValueError`` with words for ``what`` (e.g. "IMAP host")."""
    host = _text(value)
    if not host:
        raise ValueError(f"The {what} is required, e.g. imap.example.com.")
    if len(host) > 253:
        raise ValueError(f"The {what} is too long (at most 253 characters).")
    if "://" in host or host.lower().startswith(("imap:", "imaps:", "smtp:", "smtps:", "http:", "https:")):
        raise ValueError(f"Write the {what} without a scheme: imap.example.com, not imaps://imap.example.com.")
    if "/" in host or "\\" in host:
        raise ValueError(f"Write only the {what}, without a path: imap.example.com.")
    if any(ch.isspace() for ch in host) or _control_chars(host):
        raise ValueError(f"The {what} cannot contain spaces or control characters.")
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        pass
    if ":" in host:
        raise ValueError(f"Write the {what} without a port (there is a separate port field).")
    if "@" in host:
        raise ValueError(f"The {what} is a server name such as imap.example.com, not an e-mail address.")
    name = host.rstrip(".")
    if not name.isascii():
        # An internationalised name (mail.bücher.example) is stored in its DNS form (xn--...).
        try:
            name = idna.encode(name, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError):
            raise ValueError(f"The {what} is not a valid international domain name.") from None
    labels = name.split(".")
    if not name or not all(_LABEL.match(label) for label in labels):
        raise ValueError(f"The {what} may contain only letters, digits, dots and hyphens "
                         f"(no label may start or end with a hyphen), e.g. imap.example.com.")
    if all(label.isdigit() for label in labels):
        raise ValueError(f"The {what} {host} is not a valid IP address.")
    return name.lower()


def clean_port(value, what: str) -> int:
    """A TCP port 1–65535, or raise ``ValueError``."""
    text = _text(value)
    if not text:
        raise ValueError(f"The {what} is required (a number from 1 to 65535).")
    if isinstance(value, bool) or not text.isdigit() or len(text) > 5:
        raise ValueError(f"The {what} must be a whole number from 1 to 65535, not {text[:20]!r}.")
    port = int(text)
    if not 1 <= port <= 65535:
        raise ValueError(f"The {what} must be from 1 to 65535.")
    return port


def clean_url(value, what: str) -> str:
    """An http(s) URL with a host, or raise ``ValueError``."""
    url = _text(value)
    if len(url) > 500:
        raise ValueError(f"The {what} is too long (at most 500 characters).")
    if any(ch.isspace() for ch in url) or _control_chars(url):
        raise ValueError(f"The {what} cannot contain spaces or control characters.")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError:
        raise ValueError(f"The {what} is not a valid address.") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"The {what} must be a full http:// or https:// address, e.g. "
                         f"https://login.example.com/oauth2/token.")
    return url


def _bool(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on", "y"}
    return bool(value)


def _choice(value, allowed, errors, field, what) -> str | None:
    text = _text(value).lower()
    if text not in allowed:
        errors[field] = f"Choose the {what}: {', '.join(allowed)}."
        return None
    return text


def validate(data: Mapping, *, server: MailServer | None = None) -> dict:
    """Check every field of a server; returns clean values or raises ``ServerError``.

    ``data`` holds the form's or the CLI's values; missing keys take the
    defaults (on create) or the server's current values (on update). An empty
    ``oauth_client_secret`` on update keeps the stored one.
    """
    def given(key):
        if key in data:
            return data[key]
        if server is not None:
            return getattr(server, key)
        return DEFAULTS.get(key)

    errors: dict[str, str] = {}
    clean: dict = {}

    name = _text(given("name"))
    if not name:
        errors["name"] = "A name is required, e.g. \"Corporate mail\"."
    elif len(name) > 100:
        errors["name"] = "The name is too long (at most 100 characters)."
    elif _control_chars(name):
        errors["name"] = "The name cannot contain control characters."
    else:
        query = select(MailServer.id).where(func.lower(MailServer.name) == name.lower())
        if server is not None and server.id is not None:
            query = query.where(MailServer.id != server.id)
        if db.session.scalar(query) is not None:
            errors["name"] = f"A mail server named {name!r} already exists: choose another name."
    clean["name"] = name

    for side, label in (("imap", "IMAP"), ("smtp", "SMTP")):
        try:
            clean[f"{side}_host"] = clean_host(given(f"{side}_host"), f"{label} host")
        except ValueError as exc:
            errors[f"{side}_host"] = str(exc)
        try:
            clean[f"{side}_port"] = clean_port(given(f"{side}_port"), f"{label} port")
        except ValueError as exc:
            errors[f"{side}_port"] = str(exc)
        clean[f"{side}_security"] = _choice(given(f"{side}_security"), SECURITY_CHOICES, errors,
                                            f"{side}_security", f"{label} security")
    if clean.get("imap_security") == "starttls" and clean.get("imap_port") == 993:
        errors["imap_security"] = ("Port 993 expects SSL/TLS from the first byte: choose SSL/TLS, or use "
                                   "port 143 with STARTTLS.")
    if clean.get("smtp_security") == "starttls" and clean.get("smtp_port") == 465:
        errors["smtp_security"] = ("Port 465 expects SSL/TLS from the first byte: choose SSL/TLS, or use "
                                   "port 587 with STARTTLS.")

    for key in ("smtp_auth", "validate_cert", "visible"):
        clean[key] = _bool(given(key))

    method = _choice(given("auth_method") or "password", AUTH_METHODS, errors, "auth_method",
                     "authentication method")
    clean["auth_method"] = method

    provider = _text(given("oauth_provider")).lower() or None
    clean["oauth_provider"] = provider
    client_id = _text(given("oauth_client_id")) or None
    if client_id and (len(client_id) > 255 or _control_chars(client_id)):
        errors["oauth_client_id"] = "The client id is too long or contains control characters."
    clean["oauth_client_id"] = client_id
    preset = OAUTH_PROVIDERS.get(provider or "", {})
    for key, what in (("oauth_authorize_url", "authorize URL"), ("oauth_token_url", "token URL"),
                      ("oauth_redirect_uri", "redirect URI")):
        value = _text(given(key))
        preset_key = key.removeprefix("oauth_")
        if value and provider in OAUTH_PROVIDERS and any(
                value == p.get(preset_key) for name, p in OAUTH_PROVIDERS.items() if name != provider):
            # Another provider's preset left over after switching providers: take this provider's.
            value = ""
        if not value and method == "oauth2" and key != "oauth_redirect_uri":
            value = preset.get(preset_key, "")
        if value:
            try:
                value = clean_url(value, what)
            except ValueError as exc:
                errors[key] = str(exc)
        clean[key] = value or None
    scopes = " ".join(_text(given("oauth_scopes")).split())
    if scopes and provider in OAUTH_PROVIDERS and any(
            scopes == p["scopes"] for name, p in OAUTH_PROVIDERS.items() if name != provider):
        scopes = ""
    if not scopes and method == "oauth2":
        scopes = preset.get("scopes", "")
    if len(scopes) > 500 or _control_chars(scopes):
        errors["oauth_scopes"] = "The scopes are too long (at most 500 characters) or contain control characters."
    clean["oauth_scopes"] = scopes or None

    secret = data.get("oauth_client_secret")
    secret = secret.strip() if isinstance(secret, str) else None
    if secret and (len(secret) > 1000 or _control_chars(secret)):
        errors["oauth_client_secret"] = "The client secret is too long or contains control characters."
    clean["oauth_client_secret"] = secret or None

    if method == "oauth2":
        if provider not in OAUTH_PROVIDERS:
            errors["oauth_provider"] = ("Choose the OAuth provider: " + ", ".join(
                p["label"] for p in OAUTH_PROVIDERS.values()) + ".")
        if not client_id:
            errors.setdefault("oauth_client_id", "OAuth 2.0 needs the client id of the app registered "
                                                 "with the provider.")
        has_stored = server is not None and bool(server.oauth_client_secret_enc)
        if not secret and not has_stored:
            errors.setdefault("oauth_client_secret", "OAuth 2.0 needs the client secret of the app "
                                                     "registered with the provider.")
        for key, what in (("oauth_authorize_url", "authorize URL"), ("oauth_token_url", "token URL")):
            if not clean.get(key):
                errors.setdefault(key, f"OAuth 2.0 needs the provider's {what}.")
        if not clean["oauth_scopes"]:
            errors.setdefault("oauth_scopes", "OAuth 2.0 needs the scopes to ask for (space separated).")
    elif provider and provider not in OAUTH_PROVIDERS:
        errors["oauth_provider"] = "Unknown OAuth provider."

    if errors:
        raise ServerError(errors)
    return clean


# --------------------------------------------------------------------------- queries


def db_id(value) -> int | None:
    """A row id from a form or URL, or ``None`` when it cannot be one (keeps PostgreSQL from overflowing)."""
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if 0 < number < 2**31 else None


def get_server(server_id) -> MailServer:
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


def _key() -> str:
    return current_app.config["MAIL_ENCRYPTION_KEY"]


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
        server.oauth_client_secret_enc = encrypt_secret(_key(), clean["oauth_client_secret"])
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


def update_server(server_id, data: Mapping) -> MailServer:
    """Validate and change a server; an empty client secret keeps the stored one."""
    server = get_server(server_id)
    clean = validate(data, server=server)
    changes = _apply(server, clean)
    if changes:
        server.updated_at = utcnow()
        audit.record("mail_server.update", f"mail server {server.id} ({server.name})", "; ".join(changes))
    db.session.commit()
    return server


def delete_server(server_id) -> str:
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


def client_secret(server: MailServer) -> str | None:
    """The decrypted OAuth client secret (for the token exchange only, never for display)."""
    try:
        return decrypt_secret(_key(), server.oauth_client_secret_enc)
    except SecretError as exc:
        raise ServerError(str(exc), "oauth_client_secret") from exc


# --------------------------------------------------------------------------- Test connection


def _account_secret(account: MailAccount) -> str | None:
    """The scanner's login secret: its password, or on an OAuth 2.0 server a fresh access token."""
    try:
        return credentials.login_secret(account)
    except CredentialError as exc:
        raise ServerError(f"The stored credentials of the scanner \"{account.name}\" cannot be used: {exc}",
                          "account_id") from exc


def test_server(server_id, *, login: str | None = None, password: str | None = None,
                account_id=None, timeout: float | None = None) -> list[CheckResult]:
    """Run *Test connection* with typed credentials, or with a scanner's stored ones.

    The password is used for this test only, never stored. A scanner blocked
    after repeated login failures is unblocked when its stored login works again.
    """
    server = get_server(server_id)
    account = None
    if account_id not in (None, "", 0, "0"):
        number = db_id(account_id)
        account = db.session.get(MailAccount, number) if number else None
        if account is None or account.server_id != server.id:
            raise ServerError("That scanner does not use this server: choose one from the list.", "account_id")
        login, secret = account.login, _account_secret(account)
    else:
        login = _text(login)
        secret = password or None
        if not login:
            raise ServerError("Type the login of a mailbox on this server (usually its e-mail address).",
                              "login")
        if len(login) > 255 or _control_chars(login):
            raise ServerError("The login is too long or contains control characters.", "login")
        if password is not None and (len(password) > 1000 or any(ch in password for ch in "\r\n\0")):
            raise ServerError("The password is too long or contains line breaks.", "password")
    if server.auth_method == "oauth2" and account is None:
        # A typed password means nothing to an OAuth 2.0 server; its logins use a connected scanner's token.
        results = [CheckResult("IMAP login", False, "This server uses OAuth 2.0: choose a connected scanner's "
                                                    "stored credentials to test the login.")]
        return results + [smtp_check(server, login, None, timeout=timeout) if not server.smtp_auth else
                          CheckResult("SMTP", False, "Not tested: the SMTP login also needs a connected "
                                                     "scanner's OAuth token.")]
    if server.auth_method == "password" and not secret:
        # Without a password the IMAP login cannot be tried; SMTP can still be greeted.
        results = [CheckResult("IMAP login", False, "No password given: type the mailbox's password to test "
                                                    "the IMAP login (it is used for this test only).")]
        return results + [smtp_check(server, login, None, timeout=timeout)]
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
