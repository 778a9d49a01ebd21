"""Click parameter types shared by the command groups."""

from __future__ import annotations

import click

# The largest id an INTEGER column holds on every database we run on.
MAX_ROW_ID = 2**31 - 1

# A row id: a bigger or negative number names nothing, and passing it on made the driver fail with a traceback.
ROW_ID = click.IntRange(1, MAX_ROW_ID)


def row_id_or_none(text: str) -> int | None:
    """``text`` as a row id when it is one, else None (for arguments that take a name or an id)."""
    text = (text or "").strip()
    if text.isdecimal() and text.isascii() and 0 < int(text) <= MAX_ROW_ID:
        return int(text)
    return None
