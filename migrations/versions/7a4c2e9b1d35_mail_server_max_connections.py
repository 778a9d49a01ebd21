"""mail_servers.max_connections: the most connections to one mailbox at once

Revision ID: 7a4c2e9b1d35
Revises: a7c3e91d2b40
Create Date: 2026-12-03 10:30:00

The watcher keeps connections open to every watched mailbox; providers limit how many one
account may hold (Gmail: 15), so each server says how many we may use.
"""
import sqlalchemy as sa
from alembic import op

revision = "7a4c2e9b1d35"
down_revision = "a7c3e91d2b40"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("mail_servers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("max_connections", sa.Integer(), nullable=False, server_default="10"))


def downgrade():
    with op.batch_alter_table("mail_servers", schema=None) as batch_op:
        batch_op.drop_column("max_connections")
