"""Scans as use cases (queue, progress, stop), the schedule, and closing dead runs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import MailSettings
from tests import factories
from tests.unit.scanning.store_helpers import make_account


def test_schedule_picks_enabled_unblocked_scanners_that_are_due(app):
    from app.models.base import utcnow
    from app.tasks import schedule

    settings = MailSettings.get()
    settings.check_frequency_minutes = 5
    db.session.commit()
    never = make_account()
    recent = make_account()
    recent.last_run_at = utcnow() - timedelta(minutes=1)
    stale = make_account()
    stale.last_run_at = utcnow() - timedelta(minutes=6)
    disabled = make_account()
    disabled.enabled = False
    blocked = make_account()
    blocked.health = "blocked"
    db.session.commit()
    assert schedule.due_scanners() == [never.id, stale.id]
    assert "enqueue-due-scans" in schedule.PERIODIC


def test_dead_runs_are_closed_and_free_their_mailbox(app):
    import socket

    from app.models import ScanRun
    from app.models.base import utcnow
    from app.scanning import liveness
    from app.services import scans

    account = make_account()
    old = ScanRun(account_id=account.id, status="running", runner="elsewhere:1",
                  started_at=utcnow() - timedelta(hours=2), heartbeat_at=utcnow() - timedelta(hours=1))
    gone = ScanRun(account_id=account.id, status="running", runner=f"{socket.gethostname()}:99999999",
                   started_at=utcnow(), heartbeat_at=utcnow())
    alive = ScanRun(account_id=account.id, status="running", runner=liveness.runner_id(),
                    started_at=utcnow(), heartbeat_at=utcnow())
    db.session.add_all([old, gone, alive])
    db.session.flush()
    account.running_run_id = gone.id
    db.session.commit()
    assert liveness.close_dead_runs() == 2
    db.session.refresh(account)
    assert account.running_run_id is None and account.last_run_status == "failed"
    statuses = {r.id: (r.status, r.message) for r in db.session.scalars(select(ScanRun))}
    assert statuses[old.id] == ("failed", liveness.RUN_DIED) and statuses[gone.id][0] == "failed"
    assert statuses[alive.id] == ("running", None)

    with pytest.raises(scans.ScanError):
        scans.request_stop(old.id, 1)
    user = factories.user(username="stopper")
    scans.request_stop(alive.id, user.id)
    db.session.refresh(alive)
    assert alive.stop_requested and alive.stopped_by_id == user.id
    assert scans.scan_progress(account.id)["state"] == "running"


def test_inline_queue_runs_the_scan_in_process(app):
    import socket

    from app.models import ScanRun
    from app.services import scans

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    account = make_account()
    account.server.imap_port = dead_port
    db.session.commit()
    assert app.config["QUEUE_MODE"] == "inline"
    assert scans.enqueue_scan(account.id) == f"scan-{account.id}"
    run = db.session.scalars(select(ScanRun)).one()
    assert run.status == "failed" and run.finished_at and "log in" in run.message
    assert scans.scan_progress(account.id) == {"state": "idle", "run_id": None, "downloaded": 0, "total": 0}
    with pytest.raises(scans.ScanError):
        scans.enqueue_scan(999999)


def test_enqueue_with_redis_down_says_so_in_plain_words(app):
    import socket

    from app.services import scans

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    account = make_account()
    app.config.update(QUEUE_MODE="redis", REDIS_URL=f"redis://127.0.0.1:{dead_port}/0")
    try:
        with pytest.raises(scans.ScanError, match="not reachable"):
            scans.enqueue_scan(account.id)
    finally:
        app.config.update(QUEUE_MODE="inline", REDIS_URL="redis://127.0.0.1:6379/0")
        app.extensions.pop("task_redis", None)
