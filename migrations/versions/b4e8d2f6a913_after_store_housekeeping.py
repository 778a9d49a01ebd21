"""Housekeeping after storing: the scanner's after-store action and the actions still owed

Revision ID: b4e8d2f6a913
Revises: 7a4c2e9b1d35
Create Date: 2026-12-03 13:10:00

A scanner may mark a stored message read, move it or delete it on the server. The action is
recorded with the message's commit (pending_mail_actions) and deleted once the server did it.
"""
import sqlalchemy as sa
from alembic import op

revision = "b4e8d2f6a913"
down_revision = "7a4c2e9b1d35"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("mail_accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("after_store", sa.String(length=20), nullable=False, server_default="keep"))
        batch_op.add_column(sa.Column("after_store_folder", sa.String(length=255), nullable=True))
    op.create_table(
        "pending_mail_actions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("folder", sa.String(length=255), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=False),
        sa.Column("uid", sa.BigInteger(), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("target", sa.String(length=255), nullable=True),
        sa.Column("step", sa.String(length=20), nullable=False, server_default="pending"),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["mail_accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("pending_mail_actions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pending_mail_actions_account_id"), ["account_id"], unique=False)


def downgrade():
    with op.batch_alter_table("pending_mail_actions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pending_mail_actions_account_id"))
    op.drop_table("pending_mail_actions")
    with op.batch_alter_table("mail_accounts", schema=None) as batch_op:
        batch_op.drop_column("after_store_folder")
        batch_op.drop_column("after_store")
