"""drop the unused ix_emails_from_created index

Revision ID: 5e2b7c4d9f11
Revises: 3c1d9a7e5b20
Create Date: 2026-11-25 10:58:00

No query reads e-mails by sender and creation time (the loop throttle reads a mailbox's mail by
its own dates, through ix_emails_account_date); every stored message paid for this index.
"""
from alembic import op

revision = "5e2b7c4d9f11"
down_revision = "3c1d9a7e5b20"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("emails", schema=None) as batch_op:
        batch_op.drop_index("ix_emails_from_created")


def downgrade():
    with op.batch_alter_table("emails", schema=None) as batch_op:
        batch_op.create_index("ix_emails_from_created", ["from_addr", "created_at"], unique=False)
