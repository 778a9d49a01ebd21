"""Run the scan worker: ``python worker.py [--burst]``.

One RQ worker on the scan queue (each job forked into its own process) plus
the schedule: a thread that every 30 seconds enqueues the scans that are due
(``app.tasks.schedule.PERIODIC``). Connections are explicit (rq 2+ has no
implicit one). Ctrl-C (or SIGTERM) finishes the current job and stops; a
second Ctrl-C stops at once. ``--burst`` works off what is queued and exits.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import threading
import time

from redis.exceptions import RedisError
from rq import Worker
from rq.exceptions import StopRequested

from app import create_app
from app.jobqueue import jobs
from app.jobqueue.connection import redis_connection
from app.tasks import scan_job, schedule

logger = logging.getLogger("worker")


def scheduler_loop(app, stop: threading.Event) -> None:
    """Run each periodic task when it is due, until ``stop`` is set."""
    next_run = {name: 0.0 for name in schedule.PERIODIC}
    while not stop.is_set():
        for name, (every, target) in schedule.PERIODIC.items():
            if time.monotonic() >= next_run[name]:
                module, _, func = target.rpartition(".")
                try:
                    getattr(importlib.import_module(module), func)(app)
                except Exception:  # a failing tick (Redis or database down) is retried on the next one
                    logger.exception("periodic task %s failed", name)
                next_run[name] = time.monotonic() + every
        stop.wait(1.0)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Corporate Mailboxes scan worker (RQ) and schedule.")
    parser.add_argument("--burst", action="store_true", help="work off the queued jobs, then exit")
    parser.add_argument("--no-schedule", action="store_true", help="do not enqueue due scans from this worker")
    parser.add_argument("--queue", action="append", help="queue to listen on (default: every scan queue)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    app = create_app()
    scan_job.use_app(app)
    conn = redis_connection(app, blocking=True)
    names = args.queue or list(jobs.QUEUE_NAMES)

    stop = threading.Event()
    if not args.burst and not args.no_schedule:
        threading.Thread(target=scheduler_loop, args=(app, stop), name="scheduler", daemon=True).start()
    try:
        while True:
            worker = Worker([jobs.get_queue(app, name, blocking=True) for name in names], connection=conn,
                            job_monitoring_interval=int(app.config.get("WORKER_HEARTBEAT_SECONDS") or 30))
            try:
                # with_scheduler: RQ's own scheduler moves retries (Retry intervals) back to the queue when due.
                worker.work(burst=args.burst, with_scheduler=True, logging_level="INFO")
            except RedisError:
                if args.burst:
                    raise
                logger.exception("the worker lost Redis")
            # RQ leaves its loop (and fails to deregister) when Redis is down at the end of a job; only a
            # stop request (Ctrl-C, SIGTERM: RQ records its date) or --burst should end this process.
            if args.burst or getattr(worker, "_shutdown_requested_date", None) is not None:
                break
            logger.warning("the worker stopped without being asked to (Redis unreachable?); "
                           "starting again once Redis answers")
            try:
                _wait_for_redis(conn)
            except (StopRequested, KeyboardInterrupt):
                break
    finally:
        stop.set()
    return 0


def _wait_for_redis(conn, longest: float = 30.0) -> None:
    """Return once Redis answers PING, waiting longer between tries (up to ``longest`` seconds)."""
    delay = 1.0
    while True:
        try:
            conn.ping()
            return
        except RedisError:
            time.sleep(delay)
            delay = min(delay * 2, longest)


if __name__ == "__main__":
    raise SystemExit(main())
