"""OAuth 2.0 *Connect account* for XOAUTH2 mailboxes (authorization code with PKCE S256).

- ``start_connect`` builds the provider's authorization URL for one scanner;
  its ``state`` is kept in the admin's session together with the scanner id, the
  PKCE verifier and the admin's id, so a callback is only accepted from the
  browser that started it, for that scanner, once, within ``STATE_TTL`` seconds.
- ``finish_connect`` checks that state, exchanges the code and stores the
  refresh token and the access token encrypted (with the access token's expiry).

Renewing the access token for each login is ``app.connect.oauth_tokens``. No
token ever goes to a log, a flash, a URL of ours or an error message.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Mapping

import requests
from authlib.common.security import generate_token
from authlib.integrations.base_client import OAuthError as AuthlibOAuthError
from flask import session, url_for

from app.connect.oauth_tokens import (
    OAuthError,
    describe_error,
    is_oauth,
    oauth_client,
    provider_error,
    provider_timeout,
    token_expiry,
)
from app.crypto import app_key, encrypt_secret
from app.extensions import db
from app.models import MailAccount, MailServer
from app.services import audit
from app.services.scanners import get_scanner
from app.services.validation import RowId

logger = logging.getLogger(__name__)

# How long a started *Connect account* may take at the provider before its state is refused.
STATE_TTL = 15 * 60
# Connect flows one admin may have open at once (older ones are dropped from the session).
MAX_PENDING = 5
SESSION_KEY = "oauth_pending"

# Extra authorization parameters some providers need to hand out a refresh token at all.
PROVIDER_PARAMS = {
    "google": {"access_type": "offline", "prompt": "consent"},
}

# ---------------------------------------------------------------- helpers


def redirect_uri_for(server: MailServer) -> str:
    """Where the provider sends the browser back: the server's configured URI, else our callback."""
    return server.oauth_redirect_uri or url_for("admin.oauth_callback", _external=True)


# ---------------------------------------------------------------- Connect account


def start_connect(account_id: RowId, user_id: int) -> str:
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
    client = oauth_client(server, redirect_uri)
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


def finish_connect(args: Mapping[str, str], user_id: int) -> MailAccount:
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
    client = oauth_client(server, entry["redirect_uri"])
    try:
        token = client.fetch_token(server.oauth_token_url, grant_type="authorization_code", code=code,
                                   code_verifier=entry["verifier"], redirect_uri=entry["redirect_uri"],
                                   timeout=provider_timeout())
    except AuthlibOAuthError as exc:
        raise OAuthError(f"Connecting {account.login} failed: the code exchange was refused: "
                         f"{describe_error(exc.error, exc.description)}. Press Connect account again.") from None
    except (requests.RequestException, ValueError) as exc:
        raise provider_error(exc, server, "exchanging the sign-in code") from None
    if not token.get("access_token"):
        raise OAuthError("The provider's answer holds no access token. Check the token URL of the server "
                         f"{server.name}.", "protocol")
    if not token.get("refresh_token"):
        # Without it the mailbox stops working when the access token expires, an hour or so later.
        raise OAuthError("The provider gave no refresh token, so the mailbox could not be scanned for long. "
                         "Add the scope that grants offline access (Microsoft: offline_access) on the mail "
                         "server, then press Connect account again.")
    key = app_key()
    account.oauth_access_token_enc = encrypt_secret(key, token["access_token"])
    account.oauth_refresh_token_enc = encrypt_secret(key, token["refresh_token"])
    account.oauth_expires_at = token_expiry(token)
    was = account.health
    account.health, account.blocked_reason, account.login_failures = "active", None, 0
    audit.record("mail_scanner.oauth_connect", f"mail scanner {account.id} ({account.name})",
                 f"login={account.login} provider={server.oauth_provider or 'generic'}"
                 + (f"; health {was} → active" if was != "active" else ""))
    db.session.commit()
    logger.info("oauth account connected scanner=%s", account.id)
    return account
