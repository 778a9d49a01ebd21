"""scanner_activity: e-mails stored per scanner and hour, for the start page's board

Revision ID: e6a2c4f8b157
Revises: c4e8a1f07d52
Create Date: 2026-12-03 13:50:00

The board read the last 24 hours of e-mails through ix_emails_created_account; counting per hour
as the scan stores is cheaper to read (at most 24 rows a scanner) and spares every stored e-mail
that index, which goes. The last two days are counted from the e-mails already stored.
"""
import sqlalchemy as sa
from alembic import op

revision = "e6a2c4f8b157"
down_revision = "c4e8a1f07d52"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "scanner_activity",
        sa.Column("hour", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("messages", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["mail_accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("hour", "account_id"),
        sqlite_with_rowid=False,
    )
    if op.get_bind().dialect.name == "postgresql":
        hour = "CAST(FLOOR(EXTRACT(EPOCH FROM created_at) / 3600) AS INTEGER)"
        since = "now() AT TIME ZONE 'UTC' - INTERVAL '2 days'"
    else:
        hour = "CAST(strftime('%s', created_at) AS INTEGER) / 3600"
        since = "datetime('now', '-2 days')"
    op.execute(f"INSERT INTO scanner_activity (hour, account_id, messages) "
               f"SELECT {hour}, account_id, COUNT(*) FROM emails WHERE created_at >= {since} "
               f"GROUP BY {hour}, account_id")
    with op.batch_alter_table("emails", schema=None) as batch_op:
        batch_op.drop_index("ix_emails_created_account")


def downgrade():
    with op.batch_alter_table("emails", schema=None) as batch_op:
        batch_op.create_index("ix_emails_created_account", ["created_at", "account_id"], unique=False)
    op.drop_table("scanner_activity")
