"""index emails(created_at, account_id) for the start page's scanner board

Revision ID: d2f4a6c8e013
Revises: d4e8a1c7b9f2
Create Date: 2026-12-03 13:30:00

The board counts each scanner's e-mails per hour over the last 24 hours; with this index the
database reads the window's index entries only, never the e-mails. New e-mails are created in
time order, so each insert adds at the index's right edge.
"""
from alembic import op

revision = "d2f4a6c8e013"
down_revision = "d4e8a1c7b9f2"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("emails", schema=None) as batch_op:
        batch_op.create_index("ix_emails_created_account", ["created_at", "account_id"], unique=False)


def downgrade():
    with op.batch_alter_table("emails", schema=None) as batch_op:
        batch_op.drop_index("ix_emails_created_account")
