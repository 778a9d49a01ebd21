"""One-time hand-off tokens: minting, hashing, expiry, the browser binding and the shared-secret check.

Pure functions, no Flask: the service layer (app.services.autologin.handoff) stores
the hashes and does the compare-and-set redeem; this module only knows how a
token looks, how it is hashed, how long it lives, and how the confirmation that
binds it to one browser is computed. The Roundcube plugin computes the same
confirmation in PHP (``hash_hmac('sha256', 'bound:' . <token hash> . ':' .
<browser hash>, <secret>)``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

# token_urlsafe(32) gives 43 characters of [A-Za-z0-9_-]; the plugin accepts the
# same alphabet, so anything else is rejected before a database lookup.
TOKEN_BYTES = 32
TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
SECRET_HEADER = "X-Bridge-Secret"
# The plugin's browser key: 32 random bytes as hex, kept in a Roundcube cookie; hashes are SHA-256 hex too.
HEX64_PATTERN = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class MintedToken:
    """A freshly minted token: the plain value goes to the browser once, the hash to the database."""

    value: str
    token_hash: str
    expires_at: datetime


def hash_token(value: str) -> str:
    """SHA-256 hex of a token: what the database keeps, so a leaked table opens nothing."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def looks_like_token(value: str | None) -> bool:
    """True when ``value`` has the shape of a token we could have minted."""
    return bool(value) and TOKEN_PATTERN.fullmatch(value) is not None


def expiry(now: datetime, ttl_seconds: int) -> datetime:
    """When a token minted at ``now`` stops working (at least one second)."""
    return now + timedelta(seconds=max(1, int(ttl_seconds)))


def mint(now: datetime, ttl_seconds: int) -> MintedToken:
    """A new random token with its hash and expiry time."""
    value = secrets.token_urlsafe(TOKEN_BYTES)
    return MintedToken(value=value, token_hash=hash_token(value), expires_at=expiry(now, ttl_seconds))


def is_expired(expires_at: datetime, now: datetime) -> bool:
    """True when the token's lifetime is over (the expiry instant itself is already too late)."""
    return now >= expires_at


def secret_matches(presented: str | None, expected: str | None) -> bool:
    """Constant-time comparison of the shared secret, so timing reveals nothing about it.

    An unset expected secret never matches: a bridge without a secret is closed.
    """
    if not expected or presented is None:
        return False
    return hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))


def looks_like_hex64(value: str | None) -> bool:
    """True for 64 lower-case hex characters (a browser key, its hash, or a confirmation)."""
    return isinstance(value, str) and HEX64_PATTERN.fullmatch(value) is not None


def hash_browser(key: str) -> str:
    """SHA-256 hex of the plugin's browser key: what the product stores and sees in the bind URL."""
    return hashlib.sha256(key.encode("ascii")).hexdigest()


def confirmation(secret: str, token_hash: str, browser_hash: str) -> str:
    """The proof, for the plugin, that the product bound this token to this browser (HMAC-SHA256 hex)."""
    message = f"bound:{token_hash}:{browser_hash}".encode("ascii")
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def confirmation_matches(secret: str | None, token_hash: str, browser_hash: str, presented: str | None) -> bool:
    """Constant-time check of a presented confirmation."""
    if not secret or not looks_like_hex64(presented):
        return False
    return hmac.compare_digest(confirmation(secret, token_hash, browser_hash), presented)
