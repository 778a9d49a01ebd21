"""The scanner's mail per hour for the start page's board: one upsert per stored batch.

Counting here, in the batch's own transaction, keeps the board's figure exact (a batch counts
if and only if it is stored) and spares the board from counting e-mails: it reads at most 24
small rows per scanner.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.extensions import db
from app.models import ScannerActivity
from app.models.runs import hour_number
from app.scanning.store.dialect import is_postgres


def count_stored(account_id: int, stored: int, now: datetime) -> None:
    """Add ``stored`` e-mails to the scanner's count for the hour of ``now`` (nothing for none)."""
    if stored <= 0:
        return
    table = ScannerActivity.__table__
    insert = (postgres_insert if is_postgres() else sqlite_insert)(table).values(
        hour=hour_number(now), account_id=account_id, messages=stored)
    db.session.execute(insert.on_conflict_do_update(
        index_elements=[table.c.hour, table.c.account_id],
        set_={"messages": table.c.messages + insert.excluded.messages}))
