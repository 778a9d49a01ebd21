"""The Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import upgrade
from sqlalchemy import inspect, text

from app import create_app
from app.extensions import db
from tests.ci import unavailable
from tests.conftest import PG_ADMIN_URL, create_postgres_database, drop_postgres_database


def _fresh_database(backend: str, tmp_path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'migrated.db'}"
    try:
        return create_postgres_database("cm_mig")
    except Exception as exc:  # no server here: say why
        unavailable(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {str(exc).splitlines()[0]}")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_upgrade_matches_the_models(backend, tmp_path):
    url = _fresh_database(backend, tmp_path)
    app = create_app("testing", SQLALCHEMY_DATABASE_URI=url, INSTANCE_PATH=str(tmp_path))
    try:
        with app.app_context():
            upgrade()
            with db.engine.connect() as conn:
                diff = compare_metadata(MigrationContext.configure(conn), db.metadata)
                tables = set(inspect(conn).get_table_names())
            assert diff == [], f"models and migrations differ: {diff}"
            assert {"users", "mail_servers", "mail_accounts", "emails", "scan_runs", "tickets"} <= tables
            if backend == "postgresql":
                with db.engine.connect() as conn:
                    lz4 = set(conn.execute(text(
                        "SELECT attrelid::regclass::text || '.' || attname FROM pg_attribute "
                        "WHERE attrelid IN ('emails'::regclass, 'email_attachments'::regclass) "
                        "AND attcompression = 'l'")).scalars())
                # Stored mail is compressed with lz4 (Debian's PostgreSQL has it), as create_all does.
                assert lz4 == {"emails.raw", "emails.body_text", "emails.body_html", "emails.headers",
                               "email_attachments.data"}
            db.engine.dispose()
    finally:
        if backend == "postgresql":
            drop_postgres_database(url)
