"""lz4 compression for stored mail on PostgreSQL

Revision ID: 3c1d9a7e5b20
Revises: 8f68eb9003e3
Create Date: 2026-11-25 10:55:00

Stored mail is written once and read rarely: lz4 costs the server far less CPU than the default
pglz. Applies to values written from now on; a server without lz4 keeps its default.
"""
from alembic import op

revision = "3c1d9a7e5b20"
down_revision = "8f68eb9003e3"
branch_labels = None
depends_on = None

COLUMNS = {"emails": ("raw", "body_text", "body_html", "headers"), "email_attachments": ("data",)}


def _set(method: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, columns in COLUMNS.items():
        alters = ", ".join(f"ALTER COLUMN {c} SET COMPRESSION {method}" for c in columns)
        op.execute(f"DO $$ BEGIN EXECUTE 'ALTER TABLE {table} {alters}'; EXCEPTION WHEN OTHERS THEN "
                   f"RAISE NOTICE '{method} compression unavailable for {table}: %', SQLERRM; END $$")


def upgrade():
    _set("lz4")


def downgrade():
    _set("default")
