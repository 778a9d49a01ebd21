"""The batch's writes on SQLite: driver-level executemany with the columns' own converters.

The values are the ones SQLAlchemy would write (dates in its SQLite text format, booleans as
0/1), without its per-row parameter bookkeeping, which cost more than SQLite's own work for a
batch. An ``INSERT … RETURNING`` executemany runs one row at a time on SQLite, so ids are read
back with one SELECT by the rows' unique keys instead.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Table, select

from app.extensions import db
from app.models import Ticket, ticket_number
from app.models.base import utcnow
from app.scanning.store.dialect import in_values
from app.scanning.store.rows import Row, row_values

Converter = Callable[[Any], Any]

# The dialect's own DATETIME converter (for aware datetimes), kept when the first table is prepared.
_DATETIME_PROCESSOR: list[Converter] = []
# The converters of each (table, column list), built once.
_PROCESSORS: dict[tuple[str, tuple[str, ...]], list[Converter | None]] = {}


def bulk_insert(table: Table, rows: list[Row]) -> None:
    """One driver-level executemany; only the columns that need it (dates, booleans, blobs) are converted."""
    if not rows:
        return
    columns = list(rows[0])
    procs = [(i, p) for i, p in enumerate(_processors(table, tuple(columns))) if p is not None]
    names = ", ".join(f'"{c}"' for c in columns)
    sql = f'INSERT INTO "{table.name}" ({names}) VALUES ({", ".join("?" for _ in columns)})'
    values = row_values(columns)
    params: list[tuple[Any, ...]] = [values(r) for r in rows]
    if procs:
        converted = []
        for row in params:
            cells = list(row)
            for i, proc in procs:
                if cells[i] is not None:
                    cells[i] = proc(cells[i])
            converted.append(tuple(cells))
        params = converted
    db.session.connection().exec_driver_sql(sql, params)


def insert_with_ids(table: Table, rows: list[Row], key_col: Any, scope: Any = None) -> dict[str, int]:
    """Insert ``rows`` (one executemany), then read their ids by their unique ``key_col`` (one SELECT)."""
    bulk_insert(table, rows)
    keys = [r[key_col.name] for r in rows]
    query = select(key_col, table.c.id).where(in_values(key_col, keys))
    if scope is not None:
        query = query.where(scope)
    return {key: rid for key, rid in db.session.execute(query)}


def insert_tickets(rows: list[Row]) -> list[int]:
    """Insert new tickets and give each its number; returns their ids in the order of ``rows``.

    The number needs the id, so each row first gets a unique placeholder number that finds it again.
    """
    table = Ticket.__table__
    marker = uuid.uuid4().hex[:10]
    numbered = [{**row, "number": f"~{marker}:{n}"} for n, row in enumerate(rows, 1)]
    ids_by_marker = insert_with_ids(table, numbered, table.c.number)
    ids = [ids_by_marker[r["number"]] for r in numbered]
    update_many(table, "number", {i: ticket_number(i) for i in ids})
    return ids


def update_many(table: Table, column: str, values: Mapping[int, object]) -> None:
    """``UPDATE table SET column = v, updated_at = now WHERE id = k`` for many rows: one executemany."""
    if not values:
        return
    now = _datetime_text(utcnow())
    db.session.connection().exec_driver_sql(
        f'UPDATE "{table.name}" SET "{column}" = ?, updated_at = ? WHERE id = ?',
        [(v, now, k) for k, v in values.items()])


def _datetime_text(value: datetime) -> str:
    """SQLAlchemy's SQLite DATETIME text (``YYYY-MM-DD HH:MM:SS.ffffff``) for a naive datetime,
    by the C ``isoformat`` instead of the dialect's Python formatting (one call per date per row)."""
    if value.tzinfo is not None:
        return str(_DATETIME_PROCESSOR[0](value))
    return value.isoformat(" ", "microseconds")


def _processors(table: Table, columns: tuple[str, ...]) -> list[Converter | None]:
    """The bind processors of ``columns`` on SQLite, built once per table and column list."""
    key = (table.name, columns)
    procs = _PROCESSORS.get(key)
    if procs is None:
        dialect = db.session.get_bind().dialect
        procs = []
        for c in columns:
            impl = table.c[c].type.dialect_impl(dialect)
            proc: Converter | None = impl.bind_processor(dialect)
            if isinstance(impl, DateTime) and proc is not None:
                if not _DATETIME_PROCESSOR:
                    _DATETIME_PROCESSOR.append(proc)
                proc = _datetime_text
            procs.append(proc)
        _PROCESSORS[key] = procs
    return procs
