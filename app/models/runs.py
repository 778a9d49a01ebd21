"""The mail configuration, ignore filters, and the download history."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import utcnow
from app.scanner.domains import DEFAULT_PUBLIC_DOMAINS

RUN_STATUSES = ("running", "done", "failed", "partial", "stopped")
CLOSED_TICKET_POLICIES = ("reopen", "new_ticket", "ignore")
FILTER_FIELDS = ("from", "from_domain", "to", "subject", "header")
FILTER_MATCHES = ("equals", "contains", "regex")
FILTER_STOPS = ("store", "tickets")
SPAM_HANDLING = ("store", "ignore")


class MailSettings(db.Model):
    """The one row of mail configuration."""

    __tablename__ = "mail_settings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    check_frequency_minutes: Mapped[int] = mapped_column(Integer, default=5)
    max_per_run: Mapped[int] = mapped_column(Integer, default=500)
    batch_size: Mapped[int] = mapped_column(Integer, default=200)
    show_unread: Mapped[bool] = mapped_column(Boolean, default=True)
    unread_refresh_seconds: Mapped[int] = mapped_column(Integer, default=300)
    closed_ticket_policy: Mapped[str] = mapped_column(String(20), default="reopen")
    loop_max_messages: Mapped[int] = mapped_column(Integer, default=5)
    loop_window_minutes: Mapped[int] = mapped_column(Integer, default=10)
    run_timeout_minutes: Mapped[int] = mapped_column(Integer, default=30)
    block_after_failures: Mapped[int] = mapped_column(Integer, default=3)
    # Our own domains, comma-separated: mail between them is "internal".
    internal_domains: Mapped[str] = mapped_column(String(500), default="")
    # Public mail domains, one per line: mail at these never binds to an organization by its domain.
    public_domains: Mapped[str] = mapped_column(Text, default=lambda: "\n".join(DEFAULT_PUBLIC_DOMAINS))
    # Mail the server's spam filter flagged: "store" (stored, but it acts on no ticket) or "ignore"
    # (not stored); a spam score (rspamd) above the threshold counts as flagged.
    spam_handling: Mapped[str] = mapped_column(String(10), default="store", server_default="store")
    spam_score_threshold: Mapped[float] = mapped_column(Float, default=6.0, server_default="6")

    @classmethod
    def get(cls) -> MailSettings:
        """The configuration row, created with defaults on first use."""
        row = db.session.get(cls, 1)
        if row is None:
            row = cls(id=1)
            db.session.add(row)
            db.session.flush()
        return row


class IgnoreFilter(db.Model):
    """A rule that makes scanners skip a message, globally or for one mailbox."""

    __tablename__ = "ignore_filters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("mail_accounts.id", ondelete="CASCADE"))
    field: Mapped[str] = mapped_column(String(20))
    header_name: Mapped[str | None] = mapped_column(String(100))
    match: Mapped[str] = mapped_column(String(10), default="equals")
    value: Mapped[str] = mapped_column(String(500))
    # "store": the message is not stored at all; "tickets": stored, but never opens a ticket.
    stops: Mapped[str] = mapped_column(String(10), default="store")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class ScanRun(db.Model):
    """One run of one scanner: a row of the download history."""

    __tablename__ = "scan_runs"
    __table_args__ = (
        Index("ix_scan_runs_account_started", "account_id", "started_at"),
        Index("ix_scan_runs_status_started", "status", "started_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("mail_accounts.id", ondelete="CASCADE"))
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime)
    status: Mapped[str] = mapped_column(String(10), default="running")
    trigger: Mapped[str] = mapped_column(String(20), default="schedule")  # schedule / manual / cli
    job_id: Mapped[str | None] = mapped_column(String(100))
    # "host:pid" of the process running the scan, so a later run can tell a dead run from a live one.
    runner: Mapped[str | None] = mapped_column(String(120))
    downloaded: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[int] = mapped_column(Integer, default=0)
    bound: Mapped[int] = mapped_column(Integer, default=0)
    tickets_created: Mapped[int] = mapped_column(Integer, default=0)
    tickets_reopened: Mapped[int] = mapped_column(Integer, default=0)
    ignored: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    # Stored without their usual actions, by why (``app.scanner.types.HELD_KINDS``).
    archived: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    spam: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    automatic: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    filtered: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    no_sender: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    throttled: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Messages already stored from another mailbox, linked to this one instead of stored again,
    # and which mailboxes they were stored from: JSON {"<mailbox id>": count}.
    also_in: Mapped[int] = mapped_column(Integer, default=0)
    also_in_details: Mapped[str] = mapped_column(Text, default="{}")
    errors: Mapped[int] = mapped_column(Integer, default=0)
    # JSON list of {"folder", "uid", "reason"}.
    error_details: Mapped[str] = mapped_column(Text, default="[]")
    message: Mapped[str | None] = mapped_column(Text)  # the readable reason of a failed run
    stop_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    stopped_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    alerted: Mapped[bool] = mapped_column(Boolean, default=False)

    account = relationship("MailAccount")
    stopped_by = relationship("User")

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


EPOCH = datetime(1970, 1, 1)


def hour_number(moment: datetime) -> int:
    """Hours since 1970-01-01 00:00 UTC of a naive UTC time: the ``hour`` of ``ScannerActivity``."""
    return int((moment - EPOCH).total_seconds() // 3600)


class ScannerActivity(db.Model):
    """E-mails a scanner stored in one hour, counted by the scan as it stores them (the start page's board).

    ``hour`` is a whole number (``hour_number``) rather than a time: the board reads a day of
    these for every scanner at once, and integers need no parsing on either database.
    """

    __tablename__ = "scanner_activity"
    # On SQLite the rows live in the primary key's own tree: the board's range over ``hour`` reads them in place.
    __table_args__ = {"sqlite_with_rowid": False}

    hour: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("mail_accounts.id", ondelete="CASCADE"), primary_key=True)
    messages: Mapped[int] = mapped_column(Integer, default=0)
