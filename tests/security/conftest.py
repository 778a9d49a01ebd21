"""Security suite fixtures: one SQLite-only app, so the walks over every route run once, not per backend.

``app`` here overrides the two-backend fixture of tests/conftest.py for this
folder; ``client``, ``auth``, ``admin`` and ``user`` from there then use it.
The access rules under test do not depend on the database engine, and the
walks make hundreds of requests.
"""

from __future__ import annotations

import os

import pytest
from sqlalchemy import text

from app.extensions import db
from tests.conftest import _postgres_url, build_app, clean_app, drop_app
from tests.services import dovecot, redis_url  # noqa: F401  (pytest fixtures for the integration tests here)


@pytest.fixture(scope="session")
def _security_app(tmp_path_factory):
    # SECURITY_ON_POSTGRESQL=1 runs this folder on a throwaway PostgreSQL database instead (by hand:
    # PostgreSQL refuses NUL characters and out-of-range integers where SQLite stores them).
    if os.environ.get("SECURITY_ON_POSTGRESQL") == "1":
        url, backend = _postgres_url(), "postgresql"
    else:
        url, backend = "sqlite://", "sqlite"
    app = build_app(url, backend, tmp_path_factory.mktemp("security-instance"))
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
