"""Import contacts, organizations and leads from CSV files.

Columns are found by their header name (any order, any case; unknown columns
are ignored and said so). The file is UTF-8, with or without a byte-order mark.
Every row is checked before anything is written: a row without a name, with an
invalid e-mail address, or with an address already used (earlier in the file
or by a stored record of that type) is skipped and reported with its line
number and the reason. Good rows are inserted in chunks with one statement per
chunk, in one transaction: an import is stored whole or not at all.

The file is read as a stream, a line at a time (app/services/csv_lines.py), and
refused as a whole (nothing stored) past ``IMPORT_MAX_BYTES`` (50 MiB), past
``IMPORT_MAX_ROWS`` rows (200,000), or at a line longer than 1 MiB, which no file
of records has (a device such as /dev/zero, or a binary file): the message says
which limit.

:class:`RunOptions` serve the import page (app/services/record_imports.py): a
dry run that checks rows and stores nothing (the preview), and an import that
reports its progress and reads and checks the whole file before its first write,
so that the progress can be committed while it reads (on SQLite a write would
hold the only writer's lock until the import ends).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy import func, insert, select

from app.extensions import db
from app.models import Contact, Lead, Organization, OrganizationDomain
from app.models.base import normalize_email, utcnow
from app.services.csv_lines import ImportFailed, ReadCount, source_lines
from app.services.organization_domains import ImportedDomains
from app.services.records import is_valid_email

CHUNK_SIZE = 1000
MAX_BYTES = 50 * 1024 * 1024  # IMPORT_MAX_BYTES
MAX_ROWS = 200_000  # IMPORT_MAX_ROWS
# Header spellings people use for the same column.
ALIASES = {"e_mail": "email", "mail": "email", "firstname": "first_name", "lastname": "last_name",
           "first": "first_name", "last": "last_name", "company_name": "company", "organisation": "organization",
           "web": "website", "url": "website", "telephone": "phone", "tel": "phone"}


ProgressCallback = Callable[[str, int, int], None]


@dataclass
class RunOptions:
    """How to run an import beyond the defaults: a dry run, a preview's row limit, progress, deferred writes."""

    dry_run: bool = False  # check every row, store nothing (organizations to create are only counted)
    row_limit: int | None = None  # stop after this many rows (the rest is not read)
    defer_writes: bool = False  # read and check the whole file before the first write
    progress: ProgressCallback | None = None  # (phase "reading" or "saving", rows read, bytes read), per chunk


@dataclass(frozen=True)
class SkippedRow:
    """A row left out of an import: the line it starts on and why."""

    line: int
    reason: str


@dataclass
class ImportReport:
    """What an import did: rows imported, rows skipped with their reasons, notes, organizations created."""

    kind: str
    imported: int = 0
    skipped: list[SkippedRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    organizations_created: int = 0

    @property
    def summary(self) -> str:
        """One line for people: how many rows went in and how many did not."""
        return f"Imported {self.imported}, skipped {len(self.skipped)}."


@dataclass(frozen=True)
class _Kind:
    model: type
    columns: tuple[str, ...]
    # At least one of these must be in the header, and filled in on each row.
    name_columns: tuple[str, ...]
    missing_name: str


KINDS: dict[str, _Kind] = {
    "contacts": _Kind(Contact, ("first_name", "last_name", "email", "phone", "organization"),
                      ("first_name", "last_name"), "missing name (first_name and last_name are both empty)"),
    "organizations": _Kind(Organization, ("name", "email", "phone", "website", "domains"), ("name",), "missing name"),
    "leads": _Kind(Lead, ("name", "company", "email", "status"), ("name",), "missing name"),
}


def _limit(model, column: str) -> int | None:
    if column == "domains":  # a list, checked by ImportedDomains
        return None
    if column == "organization":
        return Organization.__table__.c.name.type.length
    return getattr(model.__table__.c[column].type, "length", None)


def _clean(value: str | None) -> str:
    # Line breaks, tabs, other control characters (NUL is refused by PostgreSQL) and runs of spaces inside a
    # cell become one space.
    value = value or ""
    if not value.isprintable():  # the rare cell that needs it pays for the character-by-character pass
        value = "".join(ch if ch.isprintable() else " " for ch in value)
    return " ".join(value.split())


def header_name(raw: str) -> str:
    """The column a header cell names: lower case, spaces and dashes as underscores, aliases resolved."""
    name = (raw or "").strip().lower().replace(" ", "_").replace("-", "_")
    return ALIASES.get(name, name)


def _columns(reader: Iterator[list[str]], spec: _Kind, report: ImportReport) -> dict[str, int]:
    """Read the header line: each known column's position; unknown columns are noted in the report."""
    try:
        header = next(reader)
    except StopIteration:
        raise ImportFailed("The file is empty: the first line must name the columns, "
                           f"e.g. {','.join(spec.columns)}.") from None
    except csv.Error as exc:
        raise ImportFailed(f"Line 1 is not valid CSV: {exc}.") from exc
    names = [header_name(h) for h in header]
    positions = {name: i for i, name in reversed(list(enumerate(names))) if name in spec.columns}
    if not any(col in positions for col in spec.name_columns):
        separator = next((sep for sep in (";", "\t") if len(header) == 1 and sep in header[0]), None)
        hint = (f" The first line separates its columns with {'“;”' if separator == ';' else 'tabs'}; this import "
                "reads commas: save the file as “CSV UTF-8 (comma delimited)”.") if separator else ""
        raise ImportFailed(f"The first line must name the columns; {' or '.join(spec.name_columns)} is missing. "
                           f"Expected columns: {','.join(spec.columns)} (in any order).{hint}")
    unknown = [h.strip() for h, n in zip(header, names, strict=True) if n not in spec.columns and h.strip()]
    if unknown:
        report.notes.append(f"Ignored unknown column(s): {', '.join(unknown)}.")
    return positions


def _rows(reader: Any, positions: dict[str, int], report: ImportReport,
          max_rows: int) -> Iterator[tuple[int, dict[str, str]]]:
    """(line where the row starts, {column: cell}) for every non-blank row; unreadable rows are skipped."""
    previous_end = reader.line_num
    rows = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            report.skipped.append(SkippedRow(reader.line_num, f"not valid CSV: {exc}"))
            previous_end = reader.line_num
            continue
        line = previous_end + 1  # a quoted cell may span lines: report where the row starts
        previous_end = reader.line_num
        if any(c.strip() for c in cells):
            rows += 1
            if rows > max_rows:
                raise ImportFailed(f"The file has more than {max_rows:,} rows, the most one import takes "
                                   "(IMPORT_MAX_ROWS). Nothing was imported: split the file and import the parts.")
            yield line, {col: (cells[i] if i < len(cells) else "") for col, i in positions.items()}


def import_records(kind: str, source: bytes | str | Path, *, chunk_size: int = CHUNK_SIZE,
                   max_bytes: int | None = None, max_rows: int | None = None,
                   options: RunOptions | None = None) -> ImportReport:
    """Import a CSV file (a path, its bytes, or its text) of ``kind`` (contacts, organizations or leads).

    ``max_bytes`` and ``max_rows`` default to the app's IMPORT_MAX_BYTES and IMPORT_MAX_ROWS; past
    either, the import is refused as a whole with ``ImportFailed`` naming the limit. ``options``: see
    :class:`RunOptions`.
    """
    if kind not in KINDS:
        raise ImportFailed(f"Unknown record type {kind!r}: use contacts, organizations or leads.")
    spec = KINDS[kind]
    max_bytes = max_bytes or int(current_app.config.get("IMPORT_MAX_BYTES", MAX_BYTES))
    max_rows = max_rows or int(current_app.config.get("IMPORT_MAX_ROWS", MAX_ROWS))
    options = options or RunOptions()
    read = ReadCount()
    reader = csv.reader(source_lines(source, max_bytes, read))
    report = ImportReport(kind)
    positions = _columns(reader, spec, report)
    importer = _Importer(kind, spec, report, chunk_size, options, read)
    try:
        for line, row in _rows(reader, positions, report, max_rows):
            importer.add(line, row)
            if importer.rows == options.row_limit:
                break
        importer.finish()
        if not options.dry_run:
            db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return report


class _Importer:
    """Checks rows one by one and inserts the good ones a chunk at a time."""

    def __init__(self, kind: str, spec: _Kind, report: ImportReport, chunk_size: int, options: RunOptions,
                 read: ReadCount):
        self.kind, self.spec, self.report, self.chunk_size = kind, spec, report, chunk_size
        self.options, self.read = options, read
        self.model = spec.model
        self.now = utcnow()
        self.rows = 0
        self.pending: list[dict] = []
        self.ready: list[list[dict]] = []  # checked chunks waiting for the write phase (defer_writes)
        # Addresses already stored for this record type: one query, then set lookups.
        self.stored = set(db.session.scalars(select(self.model.email).where(self.model.email.is_not(None))))
        self.seen: dict[str, int] = {}
        self.limits = {col: _limit(self.model, col) for col in spec.columns}
        self.org_ids: dict[str, int] = {}
        self.domains = ImportedDomains() if kind == "organizations" else None
        if kind == "contacts":
            # Organizations are matched by name ignoring case; the first stored one of a name wins.
            for org_id, name in db.session.execute(select(Organization.id, Organization.name)
                                                   .order_by(Organization.id.desc())):
                self.org_ids[name.strip().lower()] = org_id
        self.build: Callable[[dict], dict] = getattr(self, f"_build_{kind}")

    def skip(self, line: int, reason: str) -> None:
        self.report.skipped.append(SkippedRow(line, reason))

    def add(self, line: int, row: dict[str, str]) -> None:
        """Check one row; queue it for insert or record why it is skipped."""
        self.rows += 1
        if self.rows % self.chunk_size == 0 and self.options.progress is not None:
            self.options.progress("reading", self.rows, self.read.bytes)
        values = {col: _clean(row.get(col)) for col in self.spec.columns}
        if not any(values[col] for col in self.spec.name_columns):
            return self.skip(line, self.spec.missing_name)
        for col, limit in self.limits.items():
            if limit and len(values[col]) > limit:
                return self.skip(line, f"{col} is longer than {limit} characters")
        address = normalize_email(values["email"])
        problem = self._address_problem(address, values["email"])
        if problem is None and self.domains is not None:
            values["domains"], problem = self.domains.check(values["domains"], line)
        if problem:
            return self.skip(line, problem)
        if address is not None:
            self.seen[address] = line
        values["email"] = address
        self.pending.append(self.build(values))
        if len(self.pending) >= self.chunk_size:
            if self.options.defer_writes or self.options.dry_run:
                self.ready.append(self.pending)
                self.pending = []
            else:
                self.flush()
        return None

    def _address_problem(self, address: str | None, typed: str) -> str | None:
        """Why the row's address cannot be imported (invalid, or already used), or None."""
        if address is None:
            return None
        if not is_valid_email(address):
            return f"invalid e-mail {typed!r}"
        if address in self.seen:
            return f"duplicate e-mail {address} (already on line {self.seen[address]})"
        if address in self.stored:
            return f"duplicate e-mail {address} (a stored {self.kind[:-1]} already has it)"
        return None

    def finish(self) -> None:
        """Write what is left: the last chunk, or every checked chunk when the writes were deferred."""
        if self.options.progress is not None:
            self.options.progress("saving", self.rows, self.read.bytes)
        chunks, self.ready = [*self.ready, self.pending], []
        for chunk in chunks:
            self.pending = chunk
            self.flush()

    def _build_contacts(self, v: dict) -> dict:
        return {"first_name": v["first_name"], "last_name": v["last_name"], "email": v["email"],
                "phone": v["phone"] or None, "organization_id": v["organization"] or None,
                "created_at": self.now}

    def _build_organizations(self, v: dict) -> dict:
        return {"name": v["name"], "email": v["email"], "phone": v["phone"] or None,
                "website": v["website"] or None, "created_at": self.now, "domains": v["domains"]}

    def _build_leads(self, v: dict) -> dict:
        return {"name": v["name"], "company": v["company"] or None, "email": v["email"],
                "status": v["status"] or "new", "created_at": self.now}

    def _resolve_organizations(self) -> None:
        """Replace organization names by ids, creating the missing ones with one statement."""
        missing: dict[str, str] = {}
        for row in self.pending:
            name = row["organization_id"]
            if name and name.lower() not in self.org_ids:
                missing.setdefault(name.lower(), name)
        if missing:
            created = db.session.connection().execute(
                insert(Organization.__table__).returning(Organization.__table__.c.id, Organization.__table__.c.name,
                                                         sort_by_parameter_order=True),
                [{"name": name, "created_at": self.now} for name in missing.values()]).all()
            for org_id, name in created:
                self.org_ids[name.lower()] = org_id
            self.report.organizations_created += len(created)
        for row in self.pending:
            if row["organization_id"]:
                row["organization_id"] = self.org_ids[row["organization_id"].lower()]

    def flush(self) -> None:
        """Insert the queued rows with one statement (a dry run counts them)."""
        if not self.pending:
            return
        if self.options.dry_run:
            return self._count_only()
        if self.kind == "contacts":
            self._resolve_organizations()
        if self.kind == "organizations":
            return self._insert_organizations()
        # Core executemany on the session's connection: the ORM's per-row bookkeeping buys nothing here
        # (measured: multi-row VALUES and RETURNING batches were both slower on PostgreSQL).
        db.session.connection().execute(insert(self.model.__table__), self.pending)
        self.report.imported += len(self.pending)
        self.pending = []
        return None

    def _insert_organizations(self) -> None:
        """Insert the queued organizations, then their mail domains (their ids come back in order)."""
        domains = [row.pop("domains") for row in self.pending]
        table = Organization.__table__
        if any(domains):
            ids = db.session.connection().execute(
                insert(table).returning(table.c.id, sort_by_parameter_order=True), self.pending).scalars().all()
            db.session.connection().execute(insert(OrganizationDomain.__table__), [
                {"organization_id": org_id, "domain": d} for org_id, ds in zip(ids, domains, strict=True) for d in ds])
        else:
            db.session.connection().execute(insert(table), self.pending)
        self.report.imported += len(self.pending)
        self.pending = []

    def _count_only(self) -> None:
        """A dry run's flush: count the rows, and the organizations the import would create."""
        if self.kind == "contacts":
            for row in self.pending:
                name = row["organization_id"]
                if name and name.lower() not in self.org_ids:
                    self.org_ids[name.lower()] = 0
                    self.report.organizations_created += 1
        self.report.imported += len(self.pending)
        self.pending = []


def count_records(kind: str) -> int:
    """How many records of ``kind`` are stored (for reports and tests)."""
    model = KINDS[kind].model
    return db.session.scalar(select(func.count()).select_from(model))
