"""mail_settings.spam_handling and spam_score_threshold: what happens to mail flagged as spam

Revision ID: d2a7c4e81b56
Revises: d2f4a6c8e013
Create Date: 2026-12-03 13:40:00

Mail the server's spam filter flagged (or found in a Junk folder) is stored without actions, or
not stored; an rspamd score above the threshold counts as flagged.
"""
import sqlalchemy as sa
from alembic import op

revision = "d2a7c4e81b56"
down_revision = "d2f4a6c8e013"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("mail_settings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("spam_handling", sa.String(length=10), nullable=False, server_default="store"))
        batch_op.add_column(sa.Column("spam_score_threshold", sa.Float(), nullable=False, server_default="6"))


def downgrade():
    with op.batch_alter_table("mail_settings", schema=None) as batch_op:
        batch_op.drop_column("spam_score_threshold")
        batch_op.drop_column("spam_handling")
