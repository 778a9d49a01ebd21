"""Messages stored without their usual actions: counted per run, explained per e-mail

Revision ID: b5d8e2f41c07
Revises: c5d1e7a9f204
Create Date: 2026-12-03 13:10:00

A run counts each message it stored without opening, answering or reopening a ticket under
why (archive import, spam, automatic mail, an ignore filter, no sender, loop protection); the
e-mail keeps why, as a kind and in words for its page.
"""
import sqlalchemy as sa
from alembic import op

revision = "b5d8e2f41c07"
down_revision = "c5d1e7a9f204"
branch_labels = None
depends_on = None

HELD_COLUMNS = ("archived", "spam", "automatic", "filtered", "no_sender", "throttled")


def upgrade():
    with op.batch_alter_table("scan_runs", schema=None) as batch_op:
        for name in HELD_COLUMNS:
            batch_op.add_column(sa.Column(name, sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("emails", schema=None) as batch_op:
        batch_op.add_column(sa.Column("no_action", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("no_action_reason", sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table("emails", schema=None) as batch_op:
        batch_op.drop_column("no_action_reason")
        batch_op.drop_column("no_action")
    with op.batch_alter_table("scan_runs", schema=None) as batch_op:
        for name in reversed(HELD_COLUMNS):
            batch_op.drop_column(name)
