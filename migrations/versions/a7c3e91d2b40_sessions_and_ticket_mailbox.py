"""session versions on users; the mailbox a ticket was made from; autologin tokens bound to a browser

Revision ID: a7c3e91d2b40
Revises: 5e2b7c4d9f11
Create Date: 2026-12-03 09:30:00

users.session_version is part of the id in session and remember-me cookies: raising it ends every
session of that user. tickets.account_id is the mailbox whose mail created the ticket; who may see the
ticket follows that mailbox's grants. Existing tickets get the mailbox of their oldest related e-mail.
autologin_tokens.browser_hash/bound_at bind a hand-off to the browser that clicked.
"""
import sqlalchemy as sa
from alembic import op

revision = "a7c3e91d2b40"
down_revision = "5e2b7c4d9f11"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("session_version", sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("account_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_tickets_account_id"), ["account_id"], unique=False)
        batch_op.create_foreign_key(batch_op.f("fk_tickets_account_id_mail_accounts"), "mail_accounts",
                                    ["account_id"], ["id"], ondelete="SET NULL")
    with op.batch_alter_table("autologin_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("browser_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("bound_at", sa.DateTime(), nullable=True))
    op.execute(
        "UPDATE tickets SET account_id = (SELECT e.account_id FROM email_links l JOIN emails e ON e.id = l.email_id "
        "WHERE l.record_type = 'ticket' AND l.record_id = tickets.id ORDER BY e.id LIMIT 1)")


def downgrade():
    with op.batch_alter_table("autologin_tokens", schema=None) as batch_op:
        batch_op.drop_column("bound_at")
        batch_op.drop_column("browser_hash")
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_tickets_account_id_mail_accounts"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_tickets_account_id"))
        batch_op.drop_column("account_id")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("session_version")
