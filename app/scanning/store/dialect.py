"""What the store's SQL needs to know of the database: which dialect, and an IN over one parameter."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, String, any_, bindparam, func, literal_column, select
from sqlalchemy.dialects.postgresql import ARRAY

from app.extensions import db


def is_postgres() -> bool:
    """True when the session's database is PostgreSQL (else it is SQLite)."""
    return db.session.get_bind().dialect.name == "postgresql"


def in_values(column: Any, values: Iterable[Any]) -> ColumnElement[bool]:
    """``column IN (values)`` with the values as one parameter: ``= ANY(array)`` on PostgreSQL,
    ``IN (SELECT value FROM json_each(?))`` on SQLite (both still probe the column's index).

    A plain ``IN (?, ?, …)`` with a batch's worth of values made SQLAlchemy render and bind
    hundreds of parameters on every execution: a few percent of a scan's CPU in the profile.
    """
    values = sorted(values)
    if is_postgres():
        return column == any_(bindparam(None, values, type_=ARRAY(String)))
    return column.in_(select(literal_column("value")).select_from(func.json_each(bindparam(None, json.dumps(values)))))
