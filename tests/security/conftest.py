"""Security suite fixtures: one SQLite-only app, so the walks over every route run once, not per backend.

``app`` here overrides the two-backend fixture of tests/conftest.py for this
folder; ``client``, ``auth``, ``admin`` and ``user`` from there then use it.
The access rules under test do not depend on the database engine, and the
walks make hundreds of requests.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text

from app import create_app
from app.extensions import db
from tests.services import dovecot, redis_url  # noqa: F401  (pytest fixtures for the integration tests here)


@pytest.fixture(scope="session")
def _security_app(tmp_path_factory):
    app = create_app("testing", SQLALCHEMY_DATABASE_URI="sqlite://",
                     INSTANCE_PATH=str(tmp_path_factory.mktemp("security-instance")), DB_BACKEND="sqlite")
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
