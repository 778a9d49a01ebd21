"""OAuth 2.0 access tokens for XOAUTH2 mailboxes: the stored one while it is fresh, else a refreshed one.

``access_token(account)`` is what every login uses (the scanner, the watcher,
Test login, the Roundcube hand-off, the unread counter): the stored access token
while it has at least ``REFRESH_MARGIN`` seconds left, otherwise a refreshed
one. A refresh token the provider rotates is saved and committed *before* the
new access token is used: a lost rotation is how OAuth mailboxes die after a
while. The refresh holds a row lock, so two workers never spend the same
refresh token. A refresh token the provider no longer accepts
(``invalid_grant``: revoked, expired, already used) raises
``OAuthReconnectNeeded`` and sets the scanner's health to ``reconnect``; nothing
calls the provider again for it until an administrator connects the account again.

The token exchange uses Authlib's requests client. No token ever goes to a log,
a flash, a URL of ours or an error message.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

import requests
from authlib.integrations.base_client import OAuthError as AuthlibOAuthError
from authlib.integrations.requests_client import OAuth2Session
from flask import current_app
from sqlalchemy import select, update

from app.connect.errors import CredentialError
from app.crypto import SecretError, app_key, decrypt_secret, encrypt_secret
from app.extensions import db
from app.models import MailAccount, MailServer
from app.models.base import utcnow

logger = logging.getLogger(__name__)

# A token with less than this many seconds left is refreshed first (a scan's login must not race its expiry).
REFRESH_MARGIN = 120
DEFAULT_TIMEOUT = 15.0
RECONNECT_MESSAGE = "The mailbox's OAuth authorization was revoked or expired: reconnect the account"

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


class OAuthError(CredentialError):
    """An OAuth step failed (connecting an account, or renewing its access token)."""


class OAuthNotConnected(OAuthError):
    """The scanner has no OAuth tokens yet: Connect account first."""


class OAuthReconnectNeeded(OAuthError):
    """The provider refused the stored refresh token; the account must be connected again."""

    def __init__(self, message: str = RECONNECT_MESSAGE) -> None:
        super().__init__(message, "auth")


def is_oauth(account_or_server: MailAccount | MailServer | None) -> bool:
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


def provider_timeout() -> float:
    """Seconds a call to the OAuth provider may take (OAUTH_TIMEOUT)."""
    return float(current_app.config.get("OAUTH_TIMEOUT", DEFAULT_TIMEOUT))


def oauth_client(server: MailServer, redirect_uri: str | None = None) -> OAuth2Session:
    """Authlib's session for the server's OAuth client (its secret decrypted), ready for PKCE S256."""
    try:
        secret = decrypt_secret(app_key(), server.oauth_client_secret_enc)
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


def provider_error(exc: Exception, server: MailServer, what: str) -> OAuthError:
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


def token_expiry(token: dict) -> datetime | None:
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
    key = app_key()
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


def _refresh(account: MailAccount, *, margin: int, force: bool) -> str:
    """Refresh under a row lock; re-read first, since another process may just have refreshed."""
    table = MailAccount.__table__
    key = app_key()
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
        client = oauth_client(server)
        token = client.refresh_token(server.oauth_token_url, refresh_token=refresh_token, timeout=provider_timeout())
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
        raise provider_error(exc, server, "renewing the access token") from None
    new_access = token.get("access_token")
    if not new_access:
        db.session.commit()  # releases the lock; keeps the caller's own work
        raise OAuthError("The provider's answer to a token refresh holds no access token.", "protocol")
    values = {"oauth_access_token_enc": encrypt_secret(key, new_access), "oauth_expires_at": token_expiry(token)}
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
