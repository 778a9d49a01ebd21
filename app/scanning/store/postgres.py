"""The batch's writes on PostgreSQL: binary COPY, and ids taken from the sequence first.

COPY writes in the session's transaction. The binary format sends bytes and text as they are;
the text format spent most of a batch's COPY time escaping them (raw messages as hex, bodies
with backslashes), in Python's thread. Ids come from the table's sequence before the COPY, so
every row is written once with its id (and a ticket with its number) and no SELECT follows.
Measured: the driver spends longer splitting the one huge multi-VALUES statement of an
``INSERT … RETURNING`` than psycopg's pipelined executemany takes, and COPY beats both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import BigInteger, Boolean, DateTime, Integer, LargeBinary, String, Table, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY

from app.extensions import db
from app.models import Ticket, ticket_number
from app.models.base import utcnow
from app.scanning.store.rows import Row, row_values

if TYPE_CHECKING:
    import psycopg

# PostgreSQL type names for binary COPY, by SQLAlchemy type (most specific first).
_COPY_TYPES = ((Boolean, "bool"), (BigInteger, "int8"), (Integer, "int4"), (DateTime, "timestamp"),
               (LargeBinary, "bytea"), (String, "text"))


def bulk_insert(table: Table, rows: list[Row]) -> None:
    """Insert rows with one COPY. Every row must carry every column it needs: COPY applies no defaults."""
    if not rows:
        return
    columns = list(rows[0])
    raw = cast("psycopg.Connection[Any]", db.session.connection().connection.driver_connection)
    names = ", ".join(f'"{c}"' for c in columns)
    values = row_values(columns)
    types = _copy_types(table, columns)
    fmt = " (FORMAT BINARY)" if types else ""
    with raw.cursor() as cur, cur.copy(f'COPY "{table.name}" ({names}) FROM STDIN{fmt}') as copy:
        if types:
            copy.set_types(types)
        for row in rows:
            copy.write_row(values(row))


def insert_with_ids(table: Table, rows: list[Row], key_col: Any, scope: Any = None) -> dict[str, int]:
    """Insert ``rows`` with ids from the sequence (set on the rows); returns the ids by ``key_col``.

    ``scope`` is not needed here (the ids are known before the write); it is taken for the same
    call as on SQLite.
    """
    for row, new_id in zip(rows, next_ids(table, len(rows)), strict=True):
        row["id"] = new_id
    bulk_insert(table, rows)
    return {row[key_col.name]: row["id"] for row in rows}


def insert_tickets(rows: list[Row]) -> list[int]:
    """Insert new tickets, each written once with its id and number; returns their ids in order."""
    table = Ticket.__table__
    ids = next_ids(table, len(rows))
    bulk_insert(table, [{**row, "id": i, "number": ticket_number(i)} for row, i in zip(rows, ids, strict=True)])
    return ids


def update_many(table: Table, column: str, values: Mapping[int, object]) -> None:
    """``UPDATE table SET column = v, updated_at = now WHERE id = k`` for many rows: one statement."""
    if not values:
        return
    col = table.c[column]
    db.session.execute(
        text(f'UPDATE "{table.name}" SET "{column}" = d.v, updated_at = :now FROM unnest(:ids, :vals) '
             f'AS d(k, v) WHERE "{table.name}".id = d.k')
        .bindparams(bindparam("ids", type_=ARRAY(Integer)), bindparam("vals", type_=ARRAY(col.type))),
        {"ids": list(values), "vals": list(values.values()), "now": utcnow()})


def next_ids(table: Table, count: int) -> list[int]:
    """``count`` new ids from the PostgreSQL sequence behind ``table.id`` (one round trip)."""
    return list(db.session.scalars(
        text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n) ORDER BY 1"),
        {"table": table.name, "n": count}))


def _copy_types(table: Table, columns: list[str]) -> list[str] | None:
    """The binary COPY types of ``columns``, or None when one has a type not in ``_COPY_TYPES``."""
    out = []
    for c in columns:
        col_type = table.c[c].type
        if isinstance(col_type, DateTime) and col_type.timezone:
            return None
        name = next((n for t, n in _COPY_TYPES if isinstance(col_type, t)), None)
        if name is None:
            return None
        out.append(name)
    return out
