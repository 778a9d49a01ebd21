"""Logging in to the scanned mailbox, keeping the scanner's health.

Failed password logins are counted; after ``block_after_failures`` in a row the scanner is
blocked (the schedule skips it) until a person corrects it. A successful login clears the count
and unblocks. The login secret comes from ``app.connect.credentials.login_secret``: a password,
or an OAuth access token refreshed when needed.
"""

from __future__ import annotations

from imap_tools import BaseMailBox

from app.connect import credentials, imap
from app.connect.errors import CredentialError, MailConnectError
from app.extensions import db
from app.models import MailAccount, MailSettings
from app.scanning.errors import RunFailed


def log_in(account: MailAccount, settings: MailSettings) -> BaseMailBox:
    """The logged-in mailbox; raises ``RunFailed`` (with the failure's kind) when the login fails."""
    try:
        secret = credentials.login_secret(account)
        box = imap.open_imap(account.server, account.login, secret)
    except MailConnectError as exc:
        if exc.kind == "auth":
            _count_failure(account, settings, exc)
        db.session.commit()
        raise RunFailed(f"Could not log in to the mailbox: {exc}", exc.kind) from None
    except CredentialError as exc:  # an undecryptable secret, or an OAuth token that cannot be refreshed
        # An unreachable OAuth provider is retried like an unreachable server; a revoked grant ("auth")
        # is not (the scanner's health is then "reconnect").
        raise RunFailed(f"Could not log in to the mailbox: {exc}", exc.kind) from None
    if account.login_failures or account.health == "blocked":
        account.login_failures = 0
        if account.health == "blocked":
            account.health = "active"
            account.blocked_reason = None
        db.session.commit()
    return box


def _count_failure(account: MailAccount, settings: MailSettings, exc: MailConnectError) -> None:
    """One more refused login: block the scanner at the limit; forget a refused OAuth access token."""
    account.login_failures = (account.login_failures or 0) + 1
    limit = settings.block_after_failures or 0
    if limit and account.login_failures >= limit and account.health != "blocked":
        account.health = "blocked"
        account.blocked_reason = (f"Blocked after {account.login_failures} failed logins in a row: {exc} "
                                  "Correct the password, then use Test login to unblock it.")
    if (account.server.auth_method or "password") == "oauth2":
        # OAuth: the mail server refused our access token (revoked before it expired). Drop
        # it, so the next run asks the provider for a new one (or learns the grant is gone).
        account.oauth_access_token_enc, account.oauth_expires_at = None, None
