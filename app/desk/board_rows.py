"""The rows of the scanner board, written in Python rather than in the template.

A board has a row per scanner, a thousand and more. Measured on the bench's board (1,000
scanners), Jinja took about 37 ms of CPU for these rows and this writer about 5 ms: the
template keeps everything else, and this module only the one repeated row. Every text from
the database goes through ``escape``; the rest are numbers and fixed words.
"""

from __future__ import annotations

from flask import url_for
from markupsafe import Markup, escape

from app.formatting import utc
from app.services.scanner_board import SPARK_HEIGHT, SPARK_WIDTH, Board, ScannerTile

# A scanner id no database hands out: each link is built once by url_for and split around it.
_MARK = 987654321
_SVG = (f'<svg class="spark" viewBox="0 -1 {SPARK_WIDTH} {SPARK_HEIGHT + 2}" width="{SPARK_WIDTH}" '
        f'height="{SPARK_HEIGHT + 2}" role="img" aria-label="')


def _link_parts(endpoint: str, argument: str) -> tuple[str, str]:
    """(before, after) the scanner id in the address of ``endpoint``."""
    before, _, after = url_for(endpoint, **{argument: _MARK}).partition(str(_MARK))
    return before, after


def _notes(tile: ScannerTile) -> str:
    """The open alerts, or for a scanner needing attention without one, the reason of its state."""
    if tile.alerts:
        return "".join(f'<div class="error-text"><small>{escape(a)}</small></div>' for a in tile.alerts)
    if tile.state in ("healthy", "disabled"):
        return ""
    return f'<small class="muted">{escape(tile.reason)}</small>'


def board_rows(board: Board) -> Markup:
    """The ``<tr>`` of every scanner on the board, in the board's order."""
    edit_before, edit_after = _link_parts("admin.scanner_edit", "account_id")
    history_before, history_after = _link_parts("admin.history", "mailbox")
    rows = []
    for t in board.tiles:
        title = "" if t.state == "healthy" else f' title="{escape(t.reason)}"'
        success = utc(t.last_success_at) if t.last_success_at else "never"
        rows.append(
            f'<tr data-board-scanner="{t.id}" data-state="{t.state}">'
            f'<td><a href="{edit_before}{t.id}{edit_after}">{escape(t.name)}</a></td>'
            f'<td><span class="state state-{t.state}"{title}>{t.state}</span></td>'
            f"<td>{success}</td>"
            f'<td>{_SVG}{t.messages} e-mails in the last 24 hours"><polyline points="{t.sparkline}"/></svg> '
            f'<span data-messages="{t.id}">{t.messages}</span></td>'
            f"<td>{_notes(t)}</td>"
            f'<td><a href="{history_before}{t.id}{history_after}">History</a></td></tr>')
    return Markup("\n".join(rows))
