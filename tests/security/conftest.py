"""Security suite fixtures: the same walks and attacks on SQLite and on PostgreSQL.

``app`` here overrides the fixture of tests/conftest.py for this folder;
``client``, ``auth``, ``admin`` and ``user`` from there then use it. Every test
that uses it runs on both databases: PostgreSQL refuses NUL characters and
out-of-range integers where SQLite stores them, and found two 500s that SQLite
did not.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text

from app.extensions import db
from tests.conftest import _postgres_url, build_app, clean_app, drop_app
from tests.services import dovecot, redis_url  # noqa: F401  (pytest fixtures for the integration tests here)


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def _security_app(request, tmp_path_factory):
    url = "sqlite://" if request.param == "sqlite" else _postgres_url()
    app = build_app(url, request.param, tmp_path_factory.mktemp("security-instance"))
    yield app
    drop_app(app)


@pytest.fixture
def app(_security_app):
    """The app on an empty database (ids from 1: the world's URLs name id 1), settings restored after."""
    with clean_app(_security_app) as app:
        yield app


def row_counts() -> dict[str, int]:
    """Rows per table, to prove a refused request wrote nothing."""
    with db.engine.connect() as conn:
        return {t.name: conn.execute(text(f'SELECT COUNT(*) FROM "{t.name}"')).scalar_one()
                for t in db.metadata.sorted_tables}
