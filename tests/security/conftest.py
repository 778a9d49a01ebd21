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

from app import create_app
from app.extensions import db
from tests.services import dovecot, redis_url  # noqa: F401  (pytest fixtures for the integration tests here)


@pytest.fixture(scope="session")
def _security_app(tmp_path_factory):
    # SECURITY_ON_POSTGRESQL=1 runs this folder on a throwaway PostgreSQL database instead (by hand:
    # PostgreSQL refuses NUL characters and out-of-range integers where SQLite stores them).
    if os.environ.get("SECURITY_ON_POSTGRESQL") == "1":
        from tests.conftest import _postgres_url

        url, backend = _postgres_url(), "postgresql"
    else:
        url, backend = "sqlite://", "sqlite"
    app = create_app("testing", SQLALCHEMY_DATABASE_URI=url,
                     INSTANCE_PATH=str(tmp_path_factory.mktemp("security-instance")), DB_BACKEND=backend)
    with app.app_context():
        db.create_all()
    yield app
    with app.app_context():
        db.session.remove()
        db.drop_all()
        db.engine.dispose()


@pytest.fixture
def app(_security_app):
    """The app on an empty in-memory SQLite database, its settings restored after the test."""
    app = _security_app
    saved = dict(app.config)
    with app.app_context():
        with db.engine.begin() as conn:
            if db.engine.dialect.name == "postgresql":
                # Ids start at 1 again: the world's URLs name id 1.
                names = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
                conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            else:
                for table in reversed(db.metadata.sorted_tables):
                    conn.execute(table.delete())
        yield app
        db.session.remove()
    app.config.clear()
    app.config.update(saved)


def row_counts() -> dict[str, int]:
    """Rows per table, to prove a refused request wrote nothing."""
    with db.engine.connect() as conn:
        return {t.name: conn.execute(text(f'SELECT COUNT(*) FROM "{t.name}"')).scalar_one()
                for t in db.metadata.sorted_tables}
