"""CSV imports started from the web: the uploaded file until it is imported, the progress and the outcome."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import utcnow

# uploaded: previewed, waiting for "Import"; queued: on the tasks queue; running: reading the file;
# saving: writing the records in one transaction; done / failed: finished (the file is dropped).
IMPORT_STATUSES = ("uploaded", "queued", "running", "saving", "done", "failed")


class RecordImport(db.Model):
    __tablename__ = "record_imports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # contacts, organizations or leads
    filename: Mapped[str] = mapped_column(String(255), default="")
    status: Mapped[str] = mapped_column(String(20), default="uploaded", index=True)
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    # The file itself, kept in the database (not on one host's disk) so that any worker can import it;
    # set to NULL once the import has finished, either way.
    data: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    bytes_read: Mapped[int] = mapped_column(Integer, default=0)
    rows_read: Mapped[int] = mapped_column(Integer, default=0)
    imported: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    organizations_created: Mapped[int] = mapped_column(Integer, default=0)
    # JSON: {"skipped": [[line, reason], ...] (the first ones), "notes": [...]}.
    report: Mapped[str] = mapped_column(Text, default="")
    message: Mapped[str] = mapped_column(Text, default="")  # why it failed, in words
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)

    @property
    def percent(self) -> int:
        """How much of the file has been read, 0 to 100."""
        if self.status in ("saving", "done"):
            return 100
        return min(100, int(100 * (self.bytes_read or 0) / self.size_bytes)) if self.size_bytes else 0

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed")
