"""One-time hand-off tokens: minting, hashing, expiry and the shared-secret check.

Pure functions, no Flask: the service layer (app.services.autologin.handoff) stores
the hashes and does the compare-and-set redeem; this module only knows how a
token looks, how it is hashed and how long it lives.
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
