"""Archive import and since-date per scanner

Revision ID: e6b3f9a2c418
Revises: d2a7c4e81b56
Create Date: 2026-12-03 13:45:00

A scanner may import the mail already in its mailbox as an archive (stored and bound, acting on
no ticket), recorded per folder as the UIDNEXT below which mail was already there, and may read
only mail received since a day.
"""
import sqlalchemy as sa
from alembic import op

revision = "e6b3f9a2c418"
down_revision = "d2a7c4e81b56"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("mail_accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("archive_existing", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("since_date", sa.Date(), nullable=True))
    with op.batch_alter_table("scan_folders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("archive_below_uid", sa.BigInteger(), nullable=True))


def downgrade():
    with op.batch_alter_table("scan_folders", schema=None) as batch_op:
        batch_op.drop_column("archive_below_uid")
    with op.batch_alter_table("mail_accounts", schema=None) as batch_op:
        batch_op.drop_column("since_date")
        batch_op.drop_column("archive_existing")
