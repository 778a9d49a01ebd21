"""email_mailboxes, emails.identity, scan_runs.also_in: one message stored once for every mailbox it reached

Revision ID: c4e8a1f07d52
Revises: e6b3f9a2c418
Create Date: 2026-12-03 13:30:00

Every stored e-mail gets a link to the mailbox it was stored from (its folder and UID there).
Mail stored before keeps identity NULL: it is never linked to a later copy (a copy that reaches
another mailbox is stored once more, and from then on linked).
"""
import sqlalchemy as sa
from alembic import op

revision = "c4e8a1f07d52"
down_revision = "e6b3f9a2c418"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "email_mailboxes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("message_key", sa.String(length=300), nullable=False),
        sa.Column("folder", sa.String(length=255), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=False),
        sa.Column("uid", sa.BigInteger(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["mail_accounts.id"],
                                name=op.f("fk_email_mailboxes_account_id_mail_accounts"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["email_id"], ["emails.id"],
                                name=op.f("fk_email_mailboxes_email_id_emails"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_mailboxes")),
        sa.UniqueConstraint("account_id", "message_key", name=op.f("uq_email_mailboxes_account_id_message_key")),
        sa.UniqueConstraint("email_id", "account_id", name=op.f("uq_email_mailboxes_email_id_account_id")),
    )
    op.execute("INSERT INTO email_mailboxes (email_id, account_id, message_key, folder, uidvalidity, uid, "
               "first_seen_at) SELECT id, account_id, message_key, folder, uidvalidity, uid, created_at FROM emails")
    with op.batch_alter_table("emails", schema=None) as batch_op:
        batch_op.add_column(sa.Column("identity", sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_emails_identity"), ["identity"])
    with op.batch_alter_table("scan_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("also_in", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("also_in_details", sa.Text(), nullable=False, server_default="{}"))


def downgrade():
    with op.batch_alter_table("scan_runs", schema=None) as batch_op:
        batch_op.drop_column("also_in_details")
        batch_op.drop_column("also_in")
    with op.batch_alter_table("emails", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_emails_identity"), type_="unique")
        batch_op.drop_column("identity")
    op.drop_table("email_mailboxes")
