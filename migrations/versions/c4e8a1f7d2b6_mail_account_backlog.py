"""mail_accounts.backlog: messages the server holds beyond what the scans stored

Revision ID: c4e8a1f7d2b6
Revises: e6a2c4f8b157
Create Date: 2026-12-03 13:10:00

A run stops at its budget of messages (or of time); the count it leaves behind is shown on the
Watch page and tells the scan job to continue.
"""
import sqlalchemy as sa
from alembic import op

revision = "c4e8a1f7d2b6"
down_revision = "e6a2c4f8b157"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("mail_accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("backlog", sa.Integer(), nullable=True))


def downgrade():
    with op.batch_alter_table("mail_accounts", schema=None) as batch_op:
        batch_op.drop_column("backlog")
