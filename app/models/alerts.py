"""Operator alerts: a scanner with no successful run for too long, or a run that hangs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import utcnow

ALERT_KINDS = ("no_success", "hung_run")


class Alert(db.Model):
    """One alert episode: opened when the condition starts, closed when it recovers."""

    __tablename__ = "alerts"
    __table_args__ = (
        # At most one open alert per kind and scanner, even with two schedulers checking at once.
        Index("uq_alerts_open", "kind", "account_id", unique=True,
              sqlite_where=text("closed_at IS NULL"), postgresql_where=text("closed_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("mail_accounts.id", ondelete="CASCADE"), index=True)
    opened_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)
    message: Mapped[str] = mapped_column(Text, default="")

    account = relationship("MailAccount")

    @property
    def is_open(self) -> bool:
        return self.closed_at is None
