"""How the pages write times: every stored time is naive UTC, and every page says so."""

from __future__ import annotations

from datetime import UTC, datetime

# What a page shows for a time that is not known.
MISSING = "—"


def utc(value: datetime | None, seconds: bool = False) -> str:
    """``2026-12-03 14:05 UTC`` (with ``:SS`` when ``seconds``); an aware time is converted to UTC first.

    The Jinja filter ``|utc``: the database stores naive UTC times, so the
    label is what tells a reader in another zone how to read them.
    """
    if value is None:
        return MISSING
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC")


def register(app) -> None:
    """Make the formatting filters available to every template."""
    app.add_template_filter(utc, "utc")
