"""CSV imports from the web page: upload and preview, then the import with its progress.

1. :func:`upload` reads the file within ``IMPORT_MAX_BYTES`` and previews it:
   the column mapping, the first rows as parsed, and the lines that would be
   skipped. A small file is checked whole; a bigger one on its first
   ``CHECK_ROWS`` rows (the rest is checked by the import itself). A file that
   cannot be imported at all (not UTF-8, not CSV, no name column, too big, an
   endless line) is refused here, and nothing is stored.
2. :func:`start` runs the import in the request for a file up to
   ``IMPORT_INLINE_MAX_BYTES``, and otherwise queues it on the tasks queue.
3. :func:`run_import` (the job) reads and checks the whole file, committing its
   progress to the record_imports row every chunk, then stores every good row in
   one transaction: the import is stored whole or not at all. The file is dropped
   from the row when the import ends.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import BinaryIO

import redis
from flask import current_app
from sqlalchemy import delete, select, update

from app.extensions import db
from app.jobqueue import jobs
from app.models import RecordImport
from app.models.base import utcnow
from app.services import audit, csv_lines, records_import
from app.services.records_import import ImportFailed, ImportReport, RunOptions, SkippedRow

logger = logging.getLogger(__name__)

PREVIEW_ROWS = 10
CHECK_ROWS = 1000  # rows the preview checks in a file too big to check whole
FULL_CHECK_BYTES = 1024 * 1024  # files up to this size are checked whole by the preview
SKIPPED_KEPT = 1000  # skipped lines listed on the report page; the count covers them all
# Progress is committed at most this often while reading (a commit per 1,000-row chunk doubled the
# time of an import on SQLite, measured with bench.imports), and always when saving begins.
PROGRESS_EVERY_SECONDS = 0.5
UPLOAD_KEPT = timedelta(hours=24)  # an uploaded file nobody imported is dropped after this
# An import still unfinished this long after it was started has lost its worker (the job's timeout is an hour).
STALE_AFTER = timedelta(seconds=2 * jobs.IMPORT_TIMEOUT)
STALE_MESSAGE = ("The import did not finish: the worker running it stopped. An import is stored whole or not at "
                 "all; look at the records before you import the file again.")
_READ = 1024 * 1024


class ImportNotFound(LookupError):
    """No import has that id."""


@dataclass
class Preview:
    """What the upload page shows before the import: mapping, first rows, the lines that would be skipped."""

    kind: str
    columns: list[tuple[str, str | None]]  # (the file's header, the field it fills or None when ignored)
    fields: tuple[str, ...]
    rows: list[tuple[int, list[str]]]  # (line, the cells of ``fields``)
    report: ImportReport
    whole_file: bool  # False: only the first CHECK_ROWS rows were checked
    checked_rows: int = 0
    notes: list[str] = field(default_factory=list)


def _read_upload(stream: BinaryIO, max_bytes: int) -> bytes:
    """The uploaded file's bytes; refused past ``max_bytes`` without reading much further."""
    parts, total = [], 0
    while True:
        piece = stream.read(_READ)
        if not piece:
            return b"".join(parts)
        total += len(piece)
        if total > max_bytes:
            raise csv_lines.too_big(max_bytes)
        parts.append(piece)


Columns = list[tuple[str, str | None]]
Rows = list[tuple[int, list[str]]]


def _mapping(kind: str, data: bytes, max_bytes: int) -> tuple[Columns, Rows]:
    """The header's mapping and the first PREVIEW_ROWS rows, cells in the order of the kind's fields."""
    spec = records_import.KINDS[kind]
    reader = csv.reader(csv_lines.source_lines(data, max_bytes))
    try:
        header = next(reader)
    except (StopIteration, csv.Error):
        return [], []  # the dry run that follows says why, in words
    names = [records_import.header_name(h) for h in header]
    columns = [(h.strip(), n if n in spec.columns else None) for h, n in zip(header, names, strict=True)]
    positions = {n: i for i, n in reversed(list(enumerate(names))) if n in spec.columns}
    rows = []
    try:
        for cells in reader:
            if any(c.strip() for c in cells):
                rows.append((reader.line_num, [cells[positions[f]] if f in positions and positions[f] < len(cells)
                                               else "" for f in spec.columns]))
            if len(rows) >= PREVIEW_ROWS:
                break
    except (csv.Error, ImportFailed):
        pass  # the dry run reports the same line with its reason
    return columns, rows


def preview(kind: str, data: bytes) -> Preview:
    """Preview ``data`` as a file of ``kind``; raises ImportFailed when it cannot be imported at all."""
    if kind not in records_import.KINDS:
        raise ImportFailed(f"Unknown record type {kind!r}: use contacts, organizations or leads.")
    max_bytes = int(current_app.config.get("IMPORT_MAX_BYTES", records_import.MAX_BYTES))
    whole = len(data) <= FULL_CHECK_BYTES
    report = records_import.import_records(kind, data, options=RunOptions(
        dry_run=True, row_limit=None if whole else CHECK_ROWS))
    db.session.rollback()  # the dry run read, and wrote nothing
    columns, rows = _mapping(kind, data, max_bytes)
    checked = report.imported + len(report.skipped)
    return Preview(kind, columns, records_import.KINDS[kind].columns, rows, report, whole, checked,
                   list(report.notes))


def upload(kind: str, filename: str, stream: BinaryIO, user_id: int | None) -> tuple[RecordImport, Preview]:
    """Store an uploaded file for import after previewing it; raises ImportFailed (nothing stored)."""
    if kind not in records_import.KINDS:
        raise ImportFailed(f"Unknown record type {kind!r}: use contacts, organizations or leads.")
    data = _read_upload(stream, int(current_app.config.get("IMPORT_MAX_BYTES", records_import.MAX_BYTES)))
    if not data:
        raise ImportFailed("The file is empty: choose a CSV file whose first line names the columns.")
    shown = preview(kind, data)
    row = RecordImport(kind=kind, filename=(filename or "upload.csv")[:255], status="uploaded",
                       size_bytes=len(data), data=data, created_by=user_id, report="", message="")
    db.session.add(row)
    db.session.commit()
    return row, shown


def get_import(import_id: int) -> RecordImport:
    """The import with that id; raises :class:`ImportNotFound`."""
    row = db.session.get(RecordImport, import_id)
    if row is None:
        raise ImportNotFound(import_id)
    return row


def recent(limit: int = 10) -> list[RecordImport]:
    """The latest imports, newest first."""
    return list(db.session.scalars(select(RecordImport).order_by(RecordImport.id.desc()).limit(limit)))


def preview_of(row: RecordImport) -> Preview:
    """The preview of an uploaded import (read again from the stored file)."""
    return preview(row.kind, row.data or b"")


def start(row: RecordImport) -> str:
    """Start an uploaded import: "inline" (done in this request) or "queued" (on the tasks queue). Audited."""
    # Compare-and-set: of two clicks on Import (two tabs, a double click), one starts it.
    taken = db.session.execute(update(RecordImport).where(RecordImport.id == row.id,
                                                          RecordImport.status == "uploaded")
                               .values(status="queued").execution_options(synchronize_session=False)).rowcount
    if taken != 1:
        db.session.rollback()
        raise ImportFailed("This import has already been started.")
    audit.record("record_import.start", f"{row.kind} import {row.id} ({row.filename})"[:200],
                 f"{row.size_bytes:,} bytes")
    db.session.commit()
    db.session.refresh(row)
    inline = current_app.config.get("QUEUE_MODE") == "inline" or \
        row.size_bytes <= int(current_app.config.get("IMPORT_INLINE_MAX_BYTES", 256 * 1024))
    if inline:
        run_import(row.id)
        return "inline"
    try:
        jobs.enqueue_import_job(current_app._get_current_object(), row.id)  # type: ignore[attr-defined]
    except redis.RedisError as exc:
        row.status = "uploaded"  # nothing lost: the file is still there, and Import can be pressed again
        db.session.commit()
        raise ImportFailed("The import could not be queued: the job queue (Redis) does not answer. The file is "
                           "kept; press Import again in a moment.") from exc
    return "queued"


def cancel(row: RecordImport) -> None:
    """Drop an import that was uploaded but not started, with its file."""
    if row.status != "uploaded":
        raise ImportFailed("This import has already been started and can no longer be cancelled.")
    db.session.delete(row)
    db.session.commit()


def _save_progress(import_id: int, phase: str, rows: int, nbytes: int) -> None:
    # Committed at once, so the page sees it; the import has written nothing yet (defer_writes).
    db.session.execute(update(RecordImport).where(RecordImport.id == import_id).values(
        status="saving" if phase == "saving" else "running", rows_read=rows, bytes_read=nbytes))
    db.session.commit()


def _finish(import_id: int, values: dict) -> RecordImport:
    db.session.execute(update(RecordImport).where(RecordImport.id == import_id).values(
        data=None, finished_at=utcnow(), **values))
    db.session.commit()
    return get_import(import_id)


def run_import(import_id: int) -> RecordImport | None:
    """Import a queued file, with progress; the outcome (done or failed, in words) goes to its row."""
    taken = db.session.execute(update(RecordImport).where(RecordImport.id == import_id,
                                                          RecordImport.status == "queued")
                               .values(status="running", started_at=utcnow())
                               .execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    row = db.session.get(RecordImport, import_id)
    if row is None or taken != 1:
        return row  # started twice (a retried job): the first run owns it
    kind, data = row.kind, row.data or b""
    last = [0.0]

    def progress(phase: str, rows: int, nbytes: int) -> None:
        if phase == "saving" or time.monotonic() - last[0] >= PROGRESS_EVERY_SECONDS:
            _save_progress(import_id, phase, rows, nbytes)
            last[0] = time.monotonic()

    options = RunOptions(defer_writes=True, progress=progress)
    try:
        report = records_import.import_records(kind, data, options=options)
    except ImportFailed as exc:
        return _finish(import_id, {"status": "failed", "message": str(exc)})
    except Exception:
        db.session.rollback()
        logger.exception("CSV import %s failed", import_id)
        return _finish(import_id, {"status": "failed", "message": "The import stopped on an unexpected error; "
                                                                   "nothing was imported. The log has the details."})
    kept = [[s.line, s.reason] for s in report.skipped[:SKIPPED_KEPT]]
    return _finish(import_id, {
        "status": "done", "bytes_read": len(data), "imported": report.imported, "skipped": len(report.skipped),
        "organizations_created": report.organizations_created,
        "report": json.dumps({"skipped": kept, "notes": report.notes})})


def report_of(row: RecordImport) -> tuple[list[SkippedRow], list[str]]:
    """(the skipped lines kept, the notes) of a finished import."""
    try:
        stored = json.loads(row.report or "{}")
    except ValueError:
        stored = {}
    return [SkippedRow(int(line), str(reason)) for line, reason in stored.get("skipped", [])], \
        list(stored.get("notes", []))


def progress(row: RecordImport) -> dict:
    """The progress as the page's script reads it."""
    return {"status": row.status, "percent": row.percent, "rows": row.rows_read, "imported": row.imported,
            "skipped": row.skipped, "finished": row.finished, "message": row.message}


def prune_imports(now: datetime) -> int:
    """Drop uploads nobody imported within a day; mark imports whose worker died as failed. Returns the count."""
    dropped = db.session.execute(delete(RecordImport).where(
        RecordImport.status == "uploaded", RecordImport.created_at < now - UPLOAD_KEPT)).rowcount or 0
    stale = db.session.execute(update(RecordImport).where(
        RecordImport.status.in_(("queued", "running", "saving")), RecordImport.created_at < now - STALE_AFTER)
        .values(status="failed", data=None, message=STALE_MESSAGE, finished_at=now)).rowcount or 0
    db.session.commit()
    return dropped + stale
