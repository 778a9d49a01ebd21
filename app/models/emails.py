"""Stored e-mails, their attachments, and the records they are related to."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    DDL,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import Mapped, deferred, mapped_column, relationship

from app.extensions import db
from app.models.base import utcnow

DIRECTIONS = ("received", "sent", "internal")
RECORD_TYPES = ("contact", "organization", "lead", "ticket", "user")


class Email(db.Model):
    __tablename__ = "emails"
    __table_args__ = (
        # Exactly once per mailbox + folder + UIDVALIDITY + UID ...
        UniqueConstraint("account_id", "folder", "uidvalidity", "uid"),
        # ... and once per mailbox by Message-ID (or a hash of the raw message when it has none).
        UniqueConstraint("account_id", "message_key"),
        # One row per message content, whichever mailboxes it reached (``EmailMailbox``): two workers
        # storing the same message from two mailboxes at once cannot both insert it.
        UniqueConstraint("identity"),
        Index("ix_emails_account_date", "account_id", "date"),
        # The e-mail list pages: newest first over every mailbox, and filtered by direction, without a sort.
        Index("ix_emails_date_id", "date", "id"),
        Index("ix_emails_direction_date", "direction", "date", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The first mailbox the message was stored from; every mailbox it reached is in ``mailboxes``.
    account_id: Mapped[int] = mapped_column(ForeignKey("mail_accounts.id", ondelete="CASCADE"))
    folder: Mapped[str] = mapped_column(String(255))
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    uid: Mapped[int] = mapped_column(BigInteger)
    message_key: Mapped[str] = mapped_column(String(300))
    message_id: Mapped[str | None] = mapped_column(String(300), index=True)
    # SHA-256 of what the sender wrote (``app.scanner.identity``); NULL for mail stored before it existed.
    identity: Mapped[str | None] = mapped_column(String(64))
    in_reply_to: Mapped[str | None] = mapped_column(String(300))
    references: Mapped[str | None] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(Text, default="")
    from_addr: Mapped[str | None] = mapped_column(String(254))
    from_name: Mapped[str | None] = mapped_column(String(300))
    to_addrs: Mapped[str] = mapped_column(Text, default="")
    cc_addrs: Mapped[str] = mapped_column(Text, default="")
    reply_to: Mapped[str] = mapped_column(Text, default="")
    date: Mapped[datetime | None] = mapped_column(DateTime)
    direction: Mapped[str] = mapped_column(String(10), default="received")
    body_text: Mapped[str] = deferred(mapped_column(Text, default=""))
    body_html: Mapped[str] = deferred(mapped_column(Text, default=""))
    has_remote_content: Mapped[bool] = mapped_column(Boolean, default=False)
    headers: Mapped[str] = deferred(mapped_column(Text, default=""))
    raw: Mapped[bytes] = deferred(mapped_column(LargeBinary))
    size: Mapped[int] = mapped_column(Integer, default=0)
    # Why the message was stored only in part (too large, unparseable part ...), for the reader.
    defects: Mapped[str | None] = mapped_column(Text)
    is_automatic: Mapped[bool] = mapped_column(Boolean, default=False)
    # Stored without its usual actions (no ticket opened, answered or reopened): why, as a kind
    # (``app.scanner.types.HELD_KINDS``) and in words for its page.
    no_action: Mapped[str | None] = mapped_column(String(20))
    no_action_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    attachments: Mapped[list[EmailAttachment]] = relationship(
        back_populates="email", cascade="all, delete-orphan", order_by="EmailAttachment.id")
    account = relationship("MailAccount")
    mailboxes: Mapped[list[EmailMailbox]] = relationship(
        back_populates="email", cascade="all, delete-orphan", order_by="EmailMailbox.id")


class EmailMailbox(db.Model):
    """A mailbox a stored e-mail reached, and where: the e-mail is stored once, linked to each of them.

    A mailbox holds each message key once (``account_id, message_key``), as the dedupe of a scan
    expects; ``first_seen_at`` is when a scan of that mailbox first met the message.
    """

    __tablename__ = "email_mailboxes"
    __table_args__ = (
        UniqueConstraint("account_id", "message_key"),
        UniqueConstraint("email_id", "account_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email_id: Mapped[int] = mapped_column(ForeignKey("emails.id", ondelete="CASCADE"))
    account_id: Mapped[int] = mapped_column(ForeignKey("mail_accounts.id", ondelete="CASCADE"))
    message_key: Mapped[str] = mapped_column(String(300))
    folder: Mapped[str] = mapped_column(String(255))
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    uid: Mapped[int] = mapped_column(BigInteger)
    first_seen_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    email: Mapped[Email] = relationship(back_populates="mailboxes")
    account = relationship("MailAccount")


class EmailAttachment(db.Model):
    __tablename__ = "email_attachments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email_id: Mapped[int] = mapped_column(ForeignKey("emails.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(255), default="application/octet-stream")
    size: Mapped[int] = mapped_column(Integer, default=0)
    content_id: Mapped[str | None] = mapped_column(String(300))
    is_inline: Mapped[bool] = mapped_column(Boolean, default=False)
    data: Mapped[bytes] = deferred(mapped_column(LargeBinary))

    email: Mapped[Email] = relationship(back_populates="attachments")


class EmailLink(db.Model):
    """An e-mail related to a record: contact, organization, lead, ticket or user."""

    __tablename__ = "email_links"
    __table_args__ = (
        UniqueConstraint("email_id", "record_type", "record_id"),
        Index("ix_email_links_record", "record_type", "record_id", "email_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email_id: Mapped[int] = mapped_column(ForeignKey("emails.id", ondelete="CASCADE"))
    record_type: Mapped[str] = mapped_column(String(20))
    record_id: Mapped[int] = mapped_column(Integer)


def lz4_compression(table: str, columns: tuple[str, ...]) -> str:
    """PostgreSQL statement giving ``columns`` lz4 compression, or a notice where lz4 is unavailable.

    Stored mail is written once and read rarely; PostgreSQL's default pglz compressed every raw
    message and body on insert at a large CPU cost, and the server's CPU bounded a scan there
    (measured: 2.7 vs 2.2 CPU-seconds of the server for 10,000 messages, 10 % more messages a second).
    """
    alters = ", ".join(f"ALTER COLUMN {c} SET COMPRESSION lz4" for c in columns)
    return (f"DO $$ BEGIN EXECUTE 'ALTER TABLE {table} {alters}'; EXCEPTION WHEN OTHERS THEN "
            f"RAISE NOTICE 'lz4 compression unavailable, {table} keeps the default: %', SQLERRM; END $$")


COMPRESSED_COLUMNS = {"emails": ("raw", "body_text", "body_html", "headers"), "email_attachments": ("data",)}

for _table in (Email.__table__, EmailAttachment.__table__):
    # %% because DDL() formats its text with the table's name.
    event.listen(_table, "after_create", DDL(
        lz4_compression(_table.name, COMPRESSED_COLUMNS[_table.name]).replace("%", "%%"))
        .execute_if(dialect="postgresql"))
