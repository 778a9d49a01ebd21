"""CSV imports from the web: the uploaded file, the progress and the outcome

Revision ID: c5d1e7a9f204
Revises: b4e8d2f6a913
Create Date: 2026-12-03 13:20:00
"""
import sqlalchemy as sa
from alembic import op

revision = "c5d1e7a9f204"
down_revision = "b4e8d2f6a913"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "record_imports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=True),
        sa.Column("bytes_read", sa.Integer(), nullable=False),
        sa.Column("rows_read", sa.Integer(), nullable=False),
        sa.Column("imported", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("organizations_created", sa.Integer(), nullable=False),
        sa.Column("report", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("record_imports", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_record_imports_status"), ["status"], unique=False)


def downgrade():
    with op.batch_alter_table("record_imports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_record_imports_status"))
    op.drop_table("record_imports")
