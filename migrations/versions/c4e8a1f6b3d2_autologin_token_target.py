"""autologin_tokens.target_kind, target_json: what Roundcube opens after the hand-off

Revision ID: c4e8a1f6b3d2
Revises: b5d8e2f41c07
Create Date: 2026-12-03 13:10:00

"Write e-mail" on a record and "Open in webmail" on an e-mail open Roundcube's compose window or
one message; the recipient, subject, folder and UID stay on the server with the one-time token.
"""
import sqlalchemy as sa
from alembic import op

revision = "c4e8a1f6b3d2"
down_revision = "b5d8e2f41c07"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("autologin_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("target_kind", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("target_json", sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table("autologin_tokens", schema=None) as batch_op:
        batch_op.drop_column("target_json")
        batch_op.drop_column("target_kind")
