"""CSV import: the page's import (checked whole before its first write, progress committed per chunk)
beside the command line's streaming import, in the same run, on SQLite and PostgreSQL.

    .venv/bin/python -m bench.imports [--rows 100000] [--backends sqlite,postgresql]

Each measurement runs in its own process (``--one MODE``), on a fresh database, so that its peak
memory is its own: ``cli`` is ``records_import.import_records`` as ``flask records import`` calls
it (chunks written as they are checked); ``web`` is ``record_imports.run_import``, what the worker
runs for the import page (the file read from its record_imports row, every row checked before
the first write, the progress committed to the row every 1,000 rows). The file: ``--rows``
contacts, one in a thousand with an invalid address, 50 organizations named. PostgreSQL is the
server of ``.state/postgres.url`` (or ``PG_TEST_ADMIN_URL``). Prints a table and writes
``bench/results/imports.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def _csv(rows: int) -> bytes:
    lines = ["first_name,last_name,email,phone,organization"]
    for n in range(rows):
        address = "not-an-address" if n % 1000 == 999 else f"person{n}@customers.test"
        lines.append(f"Person,Number {n},{address},+1 555 {n:07d},Customer {n % 50}")
    return ("\n".join(lines) + "\n").encode()


def _pg_admin_url() -> str:
    url = os.environ.get("PG_TEST_ADMIN_URL")
    state = ROOT / ".state" / "postgres.url"
    if not url and state.exists():
        url = state.read_text().strip()
    return url or "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def measure_one(mode: str, db_url: str, csv_path: str) -> dict:
    """Import the file once with ``mode`` into the database at ``db_url``; the figures of this process."""
    from sqlalchemy import func, select

    from app import create_app
    from app.extensions import db
    from app.models import Contact, RecordImport
    from app.services import record_imports, records_import

    data = Path(csv_path).read_bytes()
    app = create_app("testing", SQLALCHEMY_DATABASE_URI=db_url, INSTANCE_PATH=tempfile.mkdtemp())
    with app.app_context():
        db.create_all()
        row_id = None
        if mode == "web":
            row = RecordImport(kind="contacts", filename="bench.csv", status="queued", size_bytes=len(data),
                               data=data, report="", message="")
            db.session.add(row)
            db.session.commit()
            row_id = row.id
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        started = time.perf_counter()
        if mode == "web":
            done = record_imports.run_import(row_id)
            imported, skipped = done.imported, done.skipped
        else:
            report = records_import.import_records("contacts", Path(csv_path))
            imported, skipped = report.imported, len(report.skipped)
        seconds = time.perf_counter() - started
        stored = db.session.scalar(select(func.count()).select_from(Contact))
        assert stored == imported, (stored, imported)
    return {"mode": mode, "imported": imported, "skipped": skipped, "seconds": round(seconds, 2),
            "rows_per_second": round(imported / seconds), "peak_rss_mb": round(
                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "rss_before_mb": round(rss_before, 1)}


def _database(backend: str, tmp: Path, n: int) -> tuple[str, object]:
    if backend == "sqlite":
        return f"sqlite:///{tmp / f'bench-{n}.db'}", None
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("PG_TEST_ADMIN_URL", _pg_admin_url())
    from tests.conftest import create_postgres_database, drop_postgres_database

    url = create_postgres_database("cm_bench_import")
    return url, lambda: drop_postgres_database(url)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--one", choices=("cli", "web"), help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--csv", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure_one(args.one, args.db, args.csv)))
        return 0
    results = []
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        csv_path = tmp / "contacts.csv"
        csv_path.write_bytes(_csv(args.rows))
        size_mb = csv_path.stat().st_size / 1024 / 1024
        n = 0
        for backend in args.backends.split(","):
            for mode in ("cli", "web"):
                n += 1
                url, drop = _database(backend, tmp, n)
                try:
                    out = subprocess.run([sys.executable, "-m", "bench.imports", "--one", mode, "--db", url,
                                          "--csv", str(csv_path)], cwd=ROOT, capture_output=True, text=True,
                                         check=True).stdout
                finally:
                    if drop:
                        drop()
                figures = {"backend": backend, **json.loads(out.strip().splitlines()[-1])}
                results.append(figures)
                print(f"{backend:10} {mode:4} {figures['imported']:>8,} imported {figures['skipped']:>5,} skipped "
                      f"{figures['seconds']:>7.2f} s {figures['rows_per_second']:>8,} rows/s "
                      f"peak RSS {figures['peak_rss_mb']:>6.1f} MB (before {figures['rss_before_mb']:.1f})",
                      flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "imports.json").write_text(json.dumps({"rows": args.rows, "file_mb": round(size_mb, 1),
                                                      "results": results}, indent=2))
    print(f"file: {args.rows:,} rows, {size_mb:.1f} MB; figures in bench/results/imports.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
