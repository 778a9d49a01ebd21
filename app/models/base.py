"""Column helpers shared by the models."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Naive UTC now: stored the same way on SQLite and PostgreSQL."""
    return datetime.now(UTC).replace(tzinfo=None)


def normalize_email(address: str | None) -> str | None:
    """Lower-case and strip an address so that lookups are one index probe."""
    if address is None:
        return None
    address = address.strip().lower()
    return address or None
