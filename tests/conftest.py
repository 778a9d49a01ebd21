"""Fixtures in the spirit of the Flask tutorial: app, client, runner, and factories.

Database tests run on SQLite and on PostgreSQL. PostgreSQL is used when it
answers at ``PG_TEST_ADMIN_URL`` (default: the local server); otherwise those
cases are skipped with the reason shown, and under ``CI=true`` they fail.
"""

from __future__ import annotations

import os
import re
import uuid
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text

from app import create_app
from app.extensions import db
from tests import factories
from tests.ci import unavailable

PG_ADMIN_URL = os.environ.get("PG_TEST_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
_pg_state: dict = {}


def create_postgres_database(prefix: str = "cm_test") -> str:
    """A new, empty PostgreSQL database's URL on the server at ``PG_ADMIN_URL``; raises when none lets us in."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return re.sub(r"/[^/]*$", f"/{name}", PG_ADMIN_URL)


def drop_postgres_database(url: str) -> None:
    """Drop a database made by :func:`create_postgres_database` (its sessions are ended first)."""
    name = url.rsplit("/", 1)[1]
    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()


def _postgres_url() -> str:
    """Create a throwaway database for this test session, once; skip (fail under CI) if no server answers."""
    if "url" in _pg_state:
        return _pg_state["url"]
    if "error" in _pg_state:
        unavailable(_pg_state["error"])
    try:
        _pg_state["url"] = create_postgres_database()
    except Exception as exc:  # any failure means "no PostgreSQL here": say why and skip
        _pg_state["error"] = f"PostgreSQL not reachable at {PG_ADMIN_URL}: {str(exc).splitlines()[0]}"
        unavailable(_pg_state["error"])
    return _pg_state["url"]


def pytest_sessionfinish(session, exitstatus):
    if "url" in _pg_state:
        try:
            drop_postgres_database(_pg_state["url"])
        except Exception:
            pass


def build_app(url: str, backend: str, instance_dir) -> object:
    """A testing app on ``url`` with every table created."""
    app = create_app("testing", SQLALCHEMY_DATABASE_URI=url, INSTANCE_PATH=str(instance_dir), DB_BACKEND=backend)
    with app.app_context():
        db.create_all()
    return app


def drop_app(app) -> None:
    with app.app_context():
        db.session.remove()
        db.drop_all()
        db.engine.dispose()


@contextmanager
def clean_app(app):
    """Run a test on ``app`` with empty tables (ids from 1 again), its settings restored afterwards."""
    saved = dict(app.config)
    with app.app_context():
        _empty_all_tables()
        yield app
        db.session.remove()
    # A test may change settings (PER_PAGE, limits...): the next one starts from the same config.
    app.config.clear()
    app.config.update(saved)


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def _session_app(request, tmp_path_factory):
    url = "sqlite://" if request.param == "sqlite" else _postgres_url()
    app = build_app(url, request.param, tmp_path_factory.mktemp("instance"))
    yield app
    drop_app(app)


# For a test that means something on PostgreSQL only (a race: in-memory SQLite is one connection), so that
# it runs there alone instead of being skipped on SQLite.
postgresql_only = pytest.mark.parametrize("_session_app", ["postgresql"], indirect=True)


@pytest.fixture
def app(_session_app):
    """The app on a clean database (SQLite in memory, then PostgreSQL)."""
    with clean_app(_session_app) as app:
        yield app


def _empty_all_tables():
    if db.engine.dialect.name == "postgresql":
        names = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
        with db.engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    else:
        with db.engine.begin() as conn:
            for table in reversed(db.metadata.sorted_tables):
                conn.execute(table.delete())


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def admin(app):
    return factories.user(username="admin", admin=True)


@pytest.fixture
def user(app):
    return factories.user(username="alice")


class AuthActions:
    """Log in and out through the real login form (CSRF token included)."""

    def __init__(self, client):
        self._client = client

    def login(self, username="admin", password=factories.PASSWORD):
        page = self._client.get("/login")
        token = factories.csrf_from(page)
        return self._client.post("/login", data={"username": username, "password": password,
                                                 "csrf_token": token})

    def logout(self):
        page = self._client.get("/")
        return self._client.post("/logout", data={"csrf_token": factories.csrf_from(page)})


@pytest.fixture
def auth(client):
    return AuthActions(client)
