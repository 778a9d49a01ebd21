"""OAuth 2.0 for XOAUTH2 mailboxes: *Connect account*, and fresh access tokens for every login.

- ``start_connect`` builds the provider's authorization URL for one scanner
  (authorization code with PKCE S256); its ``state`` is kept in the admin's
  session together with the scanner id, the PKCE verifier and the admin's id,
  so a callback is only accepted from the browser that started it, for that
  scanner, once, within ``STATE_TTL`` seconds.
- ``finish_connect`` checks that state, exchanges the code and stores the
  refresh token and the access token encrypted (with the access token's expiry).
- ``access_token(account)`` is what every login uses (the scanner, Test login,
  the Roundcube hand-off, the unread counter): the stored access token while it
  has at least ``REFRESH_MARGIN`` seconds left, otherwise a refreshed one. A
  refresh token the provider rotates is saved and committed *before* the new
  access token is used: a lost rotation is how OAuth mailboxes die after a while.
  The refresh holds a row lock, so two workers never spend the same refresh token.
- A refresh token the provider no longer accepts (``invalid_grant``: revoked,
  expired, already used) raises ``OAuthReconnectNeeded`` and sets the scanner's
  health to ``reconnect``; nothing calls the provider again for it until an
  administrator connects the account again.

The token exchange uses Authlib's requests client. No token ever goes to a log,
a flash, a URL of ours or an error message.
"""

from __future__ import annotations

import logging
import secrets
import time
from datetime import datetime, timedelta

import requests
from authlib.common.security import generate_token
from authlib.integrations.base_client import OAuthError as AuthlibOAuthError
from authlib.integrations.requests_client import OAuth2Session
from flask import current_app, session, url_for
from sqlalchemy import select, update

from app.crypto import SecretError, decrypt_secret, encrypt_secret
from app.extensions import db
from app.models import MailAccount, MailServer
from app.models.base import utcnow
from app.services import audit
from app.services.scanners import ScannerError, get_scanner

logger = logging.getLogger(__name__)

# A token with less than this many seconds left is refreshed first (a scan's login must not race its expiry).
REFRESH_MARGIN = 120
# How long a started *Connect account* may take at the provider before its state is refused.
STATE_TTL = 15 * 60
# Connect flows one admin may have open at once (older ones are dropped from the session).
MAX_PENDING = 5
SESSION_KEY = "oauth_pending"
DEFAULT_TIMEOUT = 15.0
RECONNECT_MESSAGE = "The mailbox's OAuth authorization was revoked or expired: reconnect the account"

# Extra authorization parameters some providers need to hand out a refresh token at all.
PROVIDER_PARAMS = {
    "google": {"access_type": "offline", "prompt": "consent"},
}

# The provider's error codes (RFC 6749 §4.1.2.1, §5.2) in words for the administrator.
ERROR_WORDS = {
    "access_denied": "access was denied at the provider (the sign-in was cancelled, or the account may not "
                     "grant this app access)",
    "invalid_client": "the provider does not accept the app's client id or client secret: check them on the "
                      "mail server",
    "unauthorized_client": "the app is not allowed to use this sign-in method at the provider",
    "invalid_scope": "the provider refused the scopes asked for: check the scopes on the mail server",
    "invalid_request": "the provider found the request malformed",
    "invalid_grant": "the provider no longer accepts the authorization (revoked, expired or already used)",
    "unsupported_response_type": "the provider does not support the authorization code flow for this app",
    "server_error": "the provider had an internal error; try again",
    "temporarily_unavailable": "the provider is temporarily unavailable; try again in a few minutes",
    "consent_required": "the account has not consented to the app yet",
    "login_required": "nobody is signed in at the provider",
}


class OAuthError(ScannerError):
    """An OAuth step failed; ``str()`` is for people and never contains a token.

    ``kind`` follows ``MailConnectError`` kinds, so the scan job knows whether a
    retry may help: "auth" (it won't) or "refused" / "timeout" / "protocol".
    It is a ``ScannerError`` so Test login, folder loading and the scanner pages
    show it as words like any other login problem.
    """

    def __init__(self, message: str, kind: str = "auth") -> None:
        super().__init__(message, "oauth")
        self.kind = kind


class OAuthNotConnected(OAuthError):
    """The scanner has no OAuth tokens yet: Connect account first."""


class OAuthReconnectNeeded(OAuthError):
    """The provider refused the stored refresh token; the account must be connected again."""

    def __init__(self, message: str = RECONNECT_MESSAGE) -> None:
        super().__init__(message, "auth")


def is_oauth(account_or_server) -> bool:
    """True for an OAuth 2.0 (XOAUTH2) server, or a scanner on one."""
    server = account_or_server.server if isinstance(account_or_server, MailAccount) else account_or_server
    return server is not None and (server.auth_method or "password") == "oauth2"


def describe_error(error: str | None, description: str | None = None) -> str:
    """The provider's error code (and its own description, when short) in plain words."""
    code = (error or "").strip()[:60]
    words = ERROR_WORDS.get(code, f"the provider answered with the error \"{code or 'unknown'}\"")
    detail = " ".join((description or "").split())[:200]
    # The provider's description adds the detail (which user, which policy); never a token (it has none).
    return f"{words} ({detail})" if detail and detail.lower() != words.lower() else words


# ---------------------------------------------------------------- helpers


def _key() -> str:
    return current_app.config["MAIL_ENCRYPTION_KEY"]


def _timeout() -> float:
    return float(current_app.config.get("OAUTH_TIMEOUT", DEFAULT_TIMEOUT))


def _client(server: MailServer, redirect_uri: str | None = None) -> OAuth2Session:
    try:
        secret = decrypt_secret(_key(), server.oauth_client_secret_enc)
    except SecretError as exc:
        raise OAuthError(f"The OAuth client secret of the server {server.name} cannot be read ({exc}): "
                         f"enter it again on the mail server.") from None
    if not server.oauth_client_id or not server.oauth_token_url:
        raise OAuthError(f"The server {server.name} has no OAuth client id or token URL: complete its OAuth "
                         f"settings under Mail tools → Mail servers.")
    # client_secret_post: accepted by Microsoft, Google and generic providers alike.
    return OAuth2Session(server.oauth_client_id, secret, scope=server.oauth_scopes or None,
                         redirect_uri=redirect_uri, code_challenge_method="S256",
                         token_endpoint_auth_method="client_secret_post")


def _network_error(exc: Exception, server: MailServer, what: str) -> OAuthError:
    """A failure to talk to the provider (not a refusal): worth retrying later."""
    where = server.oauth_token_url
    if isinstance(exc, requests.Timeout):
        return OAuthError(f"The OAuth provider ({where}) did not answer in time while {what}. "
                          f"Try again later.", "timeout")
    if isinstance(exc, requests.ConnectionError):
        return OAuthError(f"The OAuth provider ({where}) cannot be reached while {what}. Check the token URL "
                          f"of the server {server.name} and the network.", "refused")
    return OAuthError(f"The OAuth provider ({where}) gave an answer that is not a token while {what} "
                      f"({type(exc).__name__}). Check the token URL of the server {server.name}.", "protocol")


def _expiry(token: dict) -> datetime | None:
    """When the access token stops working, from ``expires_in`` (or an absolute ``expires_at``)."""
    now = utcnow()
    try:
        if token.get("expires_in") not in (None, ""):
            return now + timedelta(seconds=max(0, int(float(token["expires_in"]))))
        if token.get("expires_at") not in (None, ""):
            return now + timedelta(seconds=max(0.0, float(token["expires_at"]) - time.time()))
    except (TypeError, ValueError):
        pass
    return None  # unknown: used until the server refuses it, then refreshed


def redirect_uri_for(server: MailServer) -> str:
    """Where the provider sends the browser back: the server's configured URI, else our callback."""
    return server.oauth_redirect_uri or url_for("admin.oauth_callback", _external=True)


# ---------------------------------------------------------------- Connect account


def start_connect(account_id, user_id: int) -> str:
    """Begin *Connect account* for a scanner; returns the provider's authorization URL.

    The state, the PKCE verifier, the scanner and the admin go into the session
    (signed cookie), so only this browser can finish this flow, once.
    """
    account = get_scanner(account_id)
    server = account.server
    if not is_oauth(server):
        raise OAuthError(f"The server {server.name} logs in with a password, not OAuth 2.0: there is no "
                         f"account to connect. Set the password on the scanner form instead.")
    if not server.oauth_authorize_url:
        raise OAuthError(f"The server {server.name} has no OAuth authorize URL: complete its OAuth settings "
                         f"under Mail tools → Mail servers.")
    redirect_uri = redirect_uri_for(server)
    client = _client(server, redirect_uri)
    state = secrets.token_urlsafe(32)
    verifier = generate_token(64)  # 64 characters of [A-Za-z0-9]: within RFC 7636's 43..128
    extra = dict(PROVIDER_PARAMS.get(server.oauth_provider or "", {}))
    url, _ = client.create_authorization_url(server.oauth_authorize_url, state=state, code_verifier=verifier,
                                             login_hint=account.login, **extra)
    pending = {k: v for k, v in (session.get(SESSION_KEY) or {}).items()
               if isinstance(v, dict) and v.get("at", 0) > time.time() - STATE_TTL}
    while len(pending) >= MAX_PENDING:
        pending.pop(min(pending, key=lambda k: pending[k].get("at", 0)))
    pending[state] = {"account_id": account.id, "server_id": server.id, "user_id": user_id,
                      "verifier": verifier, "redirect_uri": redirect_uri, "at": time.time()}
    session[SESSION_KEY] = pending
    return url


def _take_pending(state: str | None, user_id: int) -> dict:
    """The pending flow for ``state`` (removed: a state works once), or OAuthError in words."""
    pending = dict(session.get(SESSION_KEY) or {})
    entry = pending.pop(state, None) if state else None
    session[SESSION_KEY] = pending
    if not isinstance(entry, dict):
        raise OAuthError("This sign-in answer does not belong to a Connect account started in this browser "
                         "(or it was already used). Press Connect account again.")
    if entry.get("user_id") != user_id:
        raise OAuthError("This sign-in was started by another administrator. Press Connect account again.")
    if entry.get("at", 0) < time.time() - STATE_TTL:
        raise OAuthError(f"The sign-in took longer than {STATE_TTL // 60} minutes. Press Connect account again.")
    return entry


def finish_connect(args, user_id: int) -> MailAccount:
    """Complete *Connect account* with the provider's redirect query ``args``; returns the scanner.

    Stores the refresh token and the access token encrypted, and puts the
    scanner back to health "active". Raises ``OAuthError`` in words: an unknown
    or reused state, the provider's own error (``error`` in the redirect), or a
    refused code exchange.
    """
    entry = _take_pending(args.get("state"), user_id)
    account = get_scanner(entry["account_id"])
    server = account.server
    if server.id != entry.get("server_id") or not is_oauth(server):
        raise OAuthError("The scanner's server changed during the sign-in. Press Connect account again.")
    if args.get("error"):
        raise OAuthError(f"Connecting {account.login} failed: "
                         f"{describe_error(args.get('error'), args.get('error_description'))}.")
    code = args.get("code")
    if not code:
        raise OAuthError("The provider sent no authorization code back. Press Connect account again.")
    client = _client(server, entry["redirect_uri"])
    try:
        token = client.fetch_token(server.oauth_token_url, grant_type="authorization_code", code=code,
                                   code_verifier=entry["verifier"], redirect_uri=entry["redirect_uri"],
                                   timeout=_timeout())
    except AuthlibOAuthError as exc:
        raise OAuthError(f"Connecting {account.login} failed: the code exchange was refused: "
                         f"{describe_error(exc.error, exc.description)}. Press Connect account again.") from None
    except (requests.RequestException, ValueError) as exc:
        raise _network_error(exc, server, "exchanging the sign-in code") from None
    if not token.get("access_token"):
        raise OAuthError("The provider's answer holds no access token. Check the token URL of the server "
                         f"{server.name}.", "protocol")
    if not token.get("refresh_token"):
        # Without it the mailbox stops working when the access token expires, an hour or so later.
        raise OAuthError("The provider gave no refresh token, so the mailbox could not be scanned for long. "
                         "Add the scope that grants offline access (Microsoft: offline_access) on the mail "
                         "server, then press Connect account again.")
    key = _key()
    account.oauth_access_token_enc = encrypt_secret(key, token["access_token"])
    account.oauth_refresh_token_enc = encrypt_secret(key, token["refresh_token"])
    account.oauth_expires_at = _expiry(token)
    was = account.health
    account.health, account.blocked_reason, account.login_failures = "active", None, 0
    audit.record("mail_scanner.oauth_connect", f"mail scanner {account.id} ({account.name})",
                 f"login={account.login} provider={server.oauth_provider or 'generic'}"
                 + (f"; health {was} → active" if was != "active" else ""))
    db.session.commit()
    logger.info("oauth account connected scanner=%s", account.id)
    return account


# ---------------------------------------------------------------- access tokens


def _fresh(expires_at: datetime | None, margin: int) -> bool:
    return expires_at is None or expires_at > utcnow() + timedelta(seconds=margin)


def access_token(account: MailAccount, *, margin: int = REFRESH_MARGIN, force_refresh: bool = False) -> str:
    """A working access token for an OAuth 2.0 scanner, refreshing it when it (nearly) expired.

    Raises ``OAuthNotConnected`` when the account was never connected,
    ``OAuthReconnectNeeded`` when the provider refuses the refresh token (the
    scanner's health is then "reconnect", committed), and ``OAuthError`` with a
    retryable ``kind`` when the provider cannot be reached. May commit the
    caller's session: a rotated refresh token is committed at once.
    """
    if not is_oauth(account):
        raise OAuthError(f"The server {account.server.name} does not use OAuth 2.0.")
    if account.health == "reconnect":
        # The provider already said no; asking again with the same dead token only adds failures there.
        raise OAuthReconnectNeeded()
    key = _key()
    try:
        if not force_refresh and account.oauth_access_token_enc and _fresh(account.oauth_expires_at, margin):
            return decrypt_secret(key, account.oauth_access_token_enc)
        if not account.oauth_refresh_token_enc:
            if account.oauth_access_token_enc and not force_refresh:
                raise OAuthReconnectNeeded()  # an expired token that cannot be renewed
            raise OAuthNotConnected(f"The mailbox {account.login} uses OAuth 2.0 and is not connected yet: "
                                    f"press Connect account on the scanner list or form.")
    except SecretError as exc:
        raise OAuthError(f"The stored OAuth token cannot be read ({exc}): connect the account again.") from None
    return _refresh(account, margin=margin, force=force_refresh)


def access_token_for(account: MailAccount) -> str | None:
    """``access_token`` for the scanner's logins (scans, Test login, folders, Test connection).

    A never-connected account gives ``None``: ``mail_connect.open_imap`` then
    fails as a login saying "connect the account first", like any other login.
    """
    try:
        return access_token(account)
    except OAuthNotConnected:
        return None


def _refresh(account: MailAccount, *, margin: int, force: bool) -> str:
    """Refresh under a row lock; re-read first, since another process may just have refreshed."""
    table = MailAccount.__table__
    key = _key()
    # Failures below commit rather than roll back: our only change is the lock, and a caller in
    # the middle of its own transaction (the Roundcube hand-off spending its one-time token) keeps it.
    # An UPDATE that changes nothing takes the row's write lock (PostgreSQL) or the database's
    # (SQLite), held until our commit: two processes never spend one refresh token.
    db.session.execute(update(table).where(table.c.id == account.id)
                       .values(oauth_refresh_token_enc=table.c.oauth_refresh_token_enc))
    row = db.session.execute(select(table.c.oauth_refresh_token_enc, table.c.oauth_access_token_enc,
                                    table.c.oauth_expires_at, table.c.health)
                             .where(table.c.id == account.id)).one()
    if row.health == "reconnect":
        db.session.commit()
        raise OAuthReconnectNeeded()
    if (not force and row.oauth_access_token_enc and row.oauth_access_token_enc != account.oauth_access_token_enc
            and _fresh(row.oauth_expires_at, margin)):
        # Someone else refreshed while we waited for the lock: use theirs.
        db.session.commit()
        db.session.refresh(account)
        return decrypt_secret(key, row.oauth_access_token_enc)
    try:
        refresh_token = decrypt_secret(key, row.oauth_refresh_token_enc)
    except SecretError as exc:
        db.session.commit()  # releases the lock; keeps the caller's own work
        raise OAuthError(f"The stored OAuth token cannot be read ({exc}): connect the account again.") from None
    if not refresh_token:  # cleared meanwhile (the scanner was pointed at another mailbox)
        db.session.commit()
        raise OAuthNotConnected(f"The mailbox {account.login} uses OAuth 2.0 and is not connected yet: "
                                f"press Connect account on the scanner list or form.")
    server = account.server
    try:
        client = _client(server)
        token = client.refresh_token(server.oauth_token_url, refresh_token=refresh_token, timeout=_timeout())
    except AuthlibOAuthError as exc:
        if exc.error == "invalid_grant":
            _mark_reconnect(account, describe_error(exc.error, exc.description))
            raise OAuthReconnectNeeded() from None
        db.session.commit()  # releases the lock; keeps the caller's own work
        raise OAuthError(f"Renewing the OAuth access of {account.login} failed: "
                         f"{describe_error(exc.error, exc.description)}.") from None
    except OAuthError:
        db.session.commit()  # releases the lock; keeps the caller's own work
        raise
    except (requests.RequestException, ValueError) as exc:
        db.session.commit()  # releases the lock; keeps the caller's own work
        raise _network_error(exc, server, "renewing the access token") from None
    new_access = token.get("access_token")
    if not new_access:
        db.session.commit()  # releases the lock; keeps the caller's own work
        raise OAuthError("The provider's answer to a token refresh holds no access token.", "protocol")
    values = {"oauth_access_token_enc": encrypt_secret(key, new_access), "oauth_expires_at": _expiry(token)}
    rotated = token.get("refresh_token")
    if rotated and rotated != refresh_token:
        values["oauth_refresh_token_enc"] = encrypt_secret(key, rotated)
    db.session.execute(update(table).where(table.c.id == account.id).values(**values))
    # Committed before anyone uses the new access token: if the process dies right after, the
    # rotated refresh token is already safe (the old one no longer works at the provider).
    db.session.commit()
    db.session.refresh(account)
    logger.info("oauth access token refreshed scanner=%s rotated=%s", account.id, bool(rotated and
                                                                                       rotated != refresh_token))
    return new_access


def _mark_reconnect(account: MailAccount, why: str) -> None:
    """Health "reconnect" with the provider's reason, committed; the dead tokens are dropped."""
    table = MailAccount.__table__
    reason = f"{why}. Press Connect account to sign in to the mailbox again."
    db.session.execute(update(table).where(table.c.id == account.id).values(
        health="reconnect", blocked_reason=reason, oauth_access_token_enc=None, oauth_expires_at=None))
    db.session.commit()
    db.session.refresh(account)
    logger.warning("oauth authorization refused by the provider scanner=%s: reconnect needed", account.id)


def forget_access_token(account: MailAccount) -> None:
    """Drop the stored access token (the mail server refused it), so the next login refreshes."""
    table = MailAccount.__table__
    db.session.execute(update(table).where(table.c.id == account.id)
                       .values(oauth_access_token_enc=None, oauth_expires_at=None))
    db.session.commit()
    db.session.refresh(account)
