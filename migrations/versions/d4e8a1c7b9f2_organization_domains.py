"""organization_domains: the mail domains of an organization; mail_settings.public_domains

Revision ID: d4e8a1c7b9f2
Revises: c4e8a1f6b3d2
Create Date: 2026-12-03 13:10:00

Mail from or to any address at an organization's domain binds to the organization, even when no
contact has that address; a domain belongs to one organization at most. Public mail domains
(gmail.com, …), edited on the mail configuration page, never bind: existing installations get
the default list.
"""
import sqlalchemy as sa
from alembic import op

revision = "d4e8a1c7b9f2"
down_revision = "c4e8a1f6b3d2"
branch_labels = None
depends_on = None

# The default list as it was when this migration was written (a migration does not follow later edits).
PUBLIC_DOMAINS = (
    "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "hotmail.co.uk", "hotmail.de", "hotmail.fr",
    "live.com", "msn.com", "yahoo.com", "yahoo.co.uk", "yahoo.de", "yahoo.fr", "ymail.com", "rocketmail.com",
    "aol.com", "icloud.com", "me.com", "mac.com", "gmx.com", "gmx.net", "gmx.de", "gmx.at", "gmx.ch",
    "web.de", "t-online.de", "freenet.de", "posteo.de", "mailbox.org", "proton.me", "protonmail.com",
    "pm.me", "tutanota.com", "tuta.io", "zoho.com", "yandex.com", "yandex.ru", "mail.ru", "qq.com",
    "163.com", "orange.fr", "free.fr", "laposte.net", "libero.it", "seznam.cz", "wp.pl", "o2.pl",
    "interia.pl", "fastmail.com", "hey.com",
)


def upgrade():
    op.create_table(
        "organization_domains",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("domain", sa.String(length=253), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"],
                                name=op.f("fk_organization_domains_organization_id_organizations"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organization_domains")),
        sa.UniqueConstraint("domain", name=op.f("uq_organization_domains_domain")),
    )
    with op.batch_alter_table("organization_domains", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_organization_domains_organization_id"), ["organization_id"],
                              unique=False)
    with op.batch_alter_table("mail_settings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("public_domains", sa.Text(), nullable=False,
                                      server_default="\n".join(PUBLIC_DOMAINS)))


def downgrade():
    with op.batch_alter_table("mail_settings", schema=None) as batch_op:
        batch_op.drop_column("public_domains")
    with op.batch_alter_table("organization_domains", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_organization_domains_organization_id"))
    op.drop_table("organization_domains")
