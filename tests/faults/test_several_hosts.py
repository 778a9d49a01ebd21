"""Fault: one of several hosts dies in the middle of a scan.

Workers and watchers run under host names of their own (Linux UTS namespaces, ``unshare --uts``,
as root): a worker on hostA, a worker and a watcher on hostB, a watcher on hostC, all on one
database and one Redis. hostB's worker takes the scan of a large mailbox; it is held in its third
batch (a loopback proxy stalls the FETCH) and every process of hostB is killed with SIGKILL. The
others must notice across hosts: the run is closed as dead (its RQ job's worker stopped
heartbeating, and the run's own heartbeat is older than ``RUN_DEAD_GRACE_SECONDS``), hostA's worker
scans the mailbox again from the last stored batch, and hostC's watcher takes over hostB's
scanners within 60 s. Every message ends stored exactly once.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import select

from app.extensions import db
from app.jobqueue.connection import redis_connection
from app.models import MailAccount, ScanRun
from app.watch import state
from tests.ci import unavailable
from tests.faults.tcp_proxy import FetchBreakingProxy
from tests.scan_helpers import (
    ROOT,
    add_scanner,
    assert_stored_once,
    count_emails,
    database_app,
    server_uids,
    wait_until,
)

pytestmark = pytest.mark.integration

TOTAL, BATCH = 1200, 200


def _on_host(host: str, env: dict, *args: str) -> subprocess.Popen:
    """``python ARGS`` in a UTS namespace whose host name is ``host``, in a session of its own."""
    command = f"hostname {host} && exec {sys.executable} " + " ".join(args)
    return subprocess.Popen(["unshare", "--uts", "sh", "-c", command], cwd=ROOT, env=env,
                            stdout=(ROOT / ".state" / "logs" / f"hosts-{host}-{args[0]}.log").open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(10)


def _backend() -> str:
    from tests.conftest import create_postgres_database, drop_postgres_database

    try:
        drop_postgres_database(create_postgres_database("cm_probe"))
        return "postgresql"
    except Exception:  # no PostgreSQL here: one SQLite file shared by the processes of every "host"
        return "sqlite"


def test_a_host_killed_mid_scan_its_run_and_scanners_are_taken_over_by_the_others(tmp_path, dovecot,
                                                                                  private_redis):
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        unavailable("the several-hosts test needs root and unshare (util-linux)")
    (ROOT / ".state" / "logs").mkdir(parents=True, exist_ok=True)
    backend = _backend()
    with database_app(tmp_path, private_redis.url, backend) as (app, worker_env, _url):
        env = {**worker_env, "WORKER_HEARTBEAT_SECONDS": "2", "RUN_DEAD_GRACE_SECONDS": "3",
               "WATCH_HEARTBEAT_SECONDS": "1", "WATCH_LEASE_SECONDS": "5"}
        proxy = FetchBreakingProxy((dovecot.host, dovecot.port))
        procs: dict[str, subprocess.Popen] = {}
        try:
            login, password = dovecot.new_user("hosts")
            big = add_scanner(app, dovecot, TOTAL, batch_size=BATCH, port=proxy.port, login=(login, password))
            small = [add_scanner(app, dovecot, 0, name=f"quiet {i}") for i in range(5)]
            everyone = [big, *small]
            proxy.arm("stall", nth=3, nbytes=20_000)
            # hostB's worker is alone when the first scan is queued, so the scan is hostB's.
            procs["B-worker"] = _on_host("hostB", env, "worker.py", "--no-schedule")
            procs["B-watcher"] = _on_host("hostB", env, "watcher.py")
            procs["C-watcher"] = _on_host("hostC", env, "watcher.py")
            conn = redis_connection(app)
            wait_until(lambda: state.watched_ids(conn, everyone) == set(everyone), timeout=60,
                       what="every scanner watched")
            assert proxy.triggered.wait(60), "the scan did not reach its third batch"
            with app.app_context():
                runner = db.session.scalar(select(ScanRun.runner))
                db.session.commit()
            assert runner.startswith("hostB:"), runner
            wait_until(lambda: count_emails(app, big) == 2 * BATCH, timeout=30, what="two batches stored")

            procs["A-worker"] = _on_host("hostA", env, "worker.py")
            for name in ("B-worker", "B-watcher"):
                _kill(procs.pop(name))
            os.kill(int(runner.rpartition(":")[2]), signal.SIGKILL)  # the work horse has a session of its own
            killed = time.monotonic()
            proxy.heal()

            wait_until(lambda: count_emails(app, big) == TOTAL, timeout=150, what="the scan finished by hostA")
            recovered = time.monotonic() - killed
            wait_until(lambda: all(s.watcher.startswith("hostC:") and s.watching
                                   for s in state.read_states(conn, everyone).values())
                       and len(state.read_states(conn, everyone)) == len(everyone),
                       timeout=max(1.0, 60 - (time.monotonic() - killed)), what="hostC to watch every scanner")
            taken_over = time.monotonic() - killed
            with app.app_context():
                wait_until(lambda: db.session.scalar(select(MailAccount.running_run_id)
                                                     .where(MailAccount.id == big)) is None
                           or db.session.rollback(), timeout=30, what="the mailbox to be freed")
                runs = db.session.execute(select(ScanRun.status, ScanRun.runner).where(ScanRun.account_id == big)
                                          .order_by(ScanRun.id)).all()
                db.session.commit()
        finally:
            proxy.close()
            for proc in procs.values():
                _kill(proc)
        assert [status for status, _ in runs] == ["failed", "done"], runs
        assert runs[1][1].startswith("hostA:")
        assert_stored_once(app, big, server_uids(dovecot, login, password))
        print(f"{backend}: hostB killed mid-scan: hostA finished its scan {recovered:.1f} s later; hostC watched "
              f"every scanner {taken_over:.1f} s after the kill")
