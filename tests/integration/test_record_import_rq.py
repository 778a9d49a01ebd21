"""CSV imports on a real RQ worker (``python worker.py``) against real Redis, sharing a file SQLite database.

A file bigger than IMPORT_INLINE_MAX_BYTES goes to the tasks queue; the worker
imports it and commits its progress to the record_imports row, which the web
process reads while the worker writes.
"""

from __future__ import annotations

import fcntl
import re
import time
from pathlib import Path

import pytest
import redis
from rq.job import Job, JobStatus
from sqlalchemy import func, select

from app.extensions import db
from app.jobqueue import jobs
from app.models import Lead, RecordImport
from app.services import record_imports
from tests.scan_helpers import kill_worker, run_burst, shared_app, start_worker

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
REDIS_DB = 12


@pytest.fixture
def env(tmp_path, redis_url):
    """An app on a file SQLite database + a private Redis db, and the environment for its workers."""
    lock_path = ROOT / ".state" / "test_record_import_rq.lock"
    lock_path.parent.mkdir(exist_ok=True)
    lock = open(lock_path, "w")  # other test sessions on this machine take turns on this Redis database
    fcntl.flock(lock, fcntl.LOCK_EX)
    url = re.sub(r"/\d*$", "", redis_url.rstrip("/")) + f"/{REDIS_DB}"
    conn = redis.Redis.from_url(url)
    conn.flushdb()
    app, worker_env = shared_app(tmp_path, url)
    app.config["IMPORT_INLINE_MAX_BYTES"] = 1000
    yield app, worker_env, conn
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    conn.flushdb()
    fcntl.flock(lock, fcntl.LOCK_UN)
    lock.close()


def _leads(n: int, bad_every: int = 0) -> bytes:
    lines = ["name,company,email,status"]
    for i in range(n):
        email = "broken-address" if bad_every and i % bad_every == 0 else f"lead{i}@prospects.test"
        lines.append(f"Lead {i},Company {i % 97},{email},new")
    return ("\n".join(lines) + "\n").encode()


def _upload(app, data: bytes) -> int:
    import io

    with app.app_context():
        row, shown = record_imports.upload("leads", "leads.csv", io.BytesIO(data), None)
        assert shown.rows[0][1][0] == "Lead 0"
        assert record_imports.start(row) == "queued"
        assert row.status == "queued"
        return row.id


def test_a_big_import_runs_on_the_tasks_queue_of_a_real_worker(env):
    app, worker_env, conn = env
    import_id = _upload(app, _leads(5000, bad_every=1000))
    job = Job.fetch(f"import-{import_id}", connection=conn)
    assert job.origin == jobs.TASKS_QUEUE and job.get_status() == JobStatus.QUEUED
    run_burst(worker_env)
    assert job.get_status() == JobStatus.FINISHED
    assert job.return_value() == {"status": "done", "imported": 4995, "skipped": 5}
    with app.app_context():
        row = db.session.get(RecordImport, import_id)
        assert (row.status, row.imported, row.skipped, row.rows_read, row.data) == ("done", 4995, 5, 5000, None)
        skipped, _ = record_imports.report_of(row)
        assert [s.line for s in skipped] == [2, 1002, 2002, 3002, 4002]
        assert skipped[0].reason == "invalid e-mail 'broken-address'"
        assert db.session.scalar(select(func.count()).select_from(Lead)) == 4995


def test_the_web_process_sees_the_progress_while_the_worker_imports(env):
    app, worker_env, conn = env
    import_id = _upload(app, _leads(120_000))
    worker = start_worker(worker_env, "--no-schedule")
    seen: list[tuple[str, int]] = []
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            with app.app_context():
                row = db.session.get(RecordImport, import_id)
                state = (row.status, record_imports.progress(row)["percent"])
                db.session.remove()
            if not seen or seen[-1] != state:
                seen.append(state)
            if state[0] in ("done", "failed"):
                break
            time.sleep(0.05)
    finally:
        kill_worker(worker, app)
    assert seen[-1] == ("done", 100), seen
    partial = [percent for status, percent in seen if status == "running" and 0 < percent < 100]
    assert partial, f"no progress between 0 and 100% was seen: {seen}"
    assert partial == sorted(partial)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Lead)) == 120_000
