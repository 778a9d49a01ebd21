"""The one place that turns a mailbox into the secret it logs in with.

A password server's mailbox logs in with its stored password; an OAuth 2.0
server's mailbox with a fresh access token (XOAUTH2), refreshed when it is
about to expire. Scans, the watcher, Test login, folder listing, Test
connection, the unread counter and the Roundcube hand-off all ask here.
"""

from __future__ import annotations

from app.connect.errors import CredentialError
from app.connect.oauth_tokens import OAuthNotConnected, access_token, is_oauth
from app.crypto import SecretError, app_key, decrypt_secret
from app.models import MailAccount


def login_secret(account: MailAccount) -> str | None:
    """The password, or for an OAuth 2.0 server a working access token; never for display.

    Returns None when there is nothing to log in with: no password stored, or an
    OAuth account nobody connected yet (``open_imap`` then fails as a login that
    says so). Raises ``CredentialError`` in words: a secret that cannot be
    decrypted (the encryption key changed), ``OAuthReconnectNeeded`` when the
    provider refused the refresh token, or ``OAuthError`` with a retryable kind
    when the provider cannot be reached. May commit the session (a rotated
    refresh token is committed at once).
    """
    if is_oauth(account):
        try:
            return access_token(account)
        except OAuthNotConnected:
            return None
    try:
        return decrypt_secret(app_key(), account.password_enc)
    except SecretError as exc:
        raise CredentialError(f"The stored password of {account.login} cannot be used: {exc}") from None
