"""How the process runs a scan: interpreter tuning for its length, and its turn as a SQLite writer.

Both exist for speed only; a scan gives the same result without them.

``scan_runtime()`` is applied by whatever runs scans as its main work: the RQ job
(``app.tasks.scan_job``), the CLI's ``scanners run`` and the benchmark (``bench/measure.py``).
``run_scan`` itself never switches it on, so a scan inside the web process (``QUEUE_MODE=inline``)
runs with the process's usual settings, which the other requests' threads share. For the length
of a scan:

- The objects that existed before the scan are frozen out of the garbage collector's passes, and
  young passes are rarer (threshold 0 at least 20,000). A scan allocates heavily (every message
  becomes many small objects), and each full pass walked everything the process holds: the app,
  SQLAlchemy, the imported modules. Measured: 4 full passes of about 66 ms and ~500 young ones in
  a 4.4 s scan of 10,000 messages, 8 % of the run. Frozen objects are only skipped, never freed
  while frozen, and are handed back when the scan ends.
- The GIL switch interval is 1 ms instead of 5. The store thread releases the GIL around every
  database call, and the read-ahead thread, busy parsing, then kept it for up to the whole
  interval each time: a batch's writes took 75-96 ms instead of 35 ms, and on SQLite the other
  workers wait for those writes to end.

``WriterTurn`` is taken by every batch of a scan on a SQLite database file, whoever runs it
(see its docstring).
"""

from __future__ import annotations

import fcntl
import gc
import logging
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from app.extensions import db

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_saved: list[tuple[tuple[int, ...], float]] = []  # the settings before the first running scan
_users = [0]  # tuned scans of this process running now


@contextmanager
def scan_runtime() -> Iterator[None]:
    """The interpreter settings above for the ``with`` block, put back afterwards.

    Blocks may overlap in threads of one process: the first one in changes the settings, the
    last one out puts back what was there before any of them.
    """
    with _lock:
        if not _saved:
            _saved.append((gc.get_threshold(), sys.getswitchinterval()))
            thresholds, interval = _saved[0]
            gc.freeze()
            gc.set_threshold(max(thresholds[0], 20_000), *thresholds[1:])
            sys.setswitchinterval(min(interval, 0.001))
        _users[0] += 1
    try:
        yield
    finally:
        with _lock:
            _users[0] -= 1
            if not _users[0]:
                thresholds, interval = _saved.pop()
                sys.setswitchinterval(interval)
                gc.set_threshold(*thresholds)
                gc.unfreeze()


class WriterTurn:
    """A batch's turn as the writer of a SQLite database file, taken with a kernel file lock.

    SQLite lets one writer in at a time and makes the others poll: a busy writer sleeps 1, 2, 5,
    10, 15, 20… ms between tries, so it kept sleeping after the lock was free. Measured: two scans
    on two SQLite files ran 2.0x one scan, on one shared file 1.4x. Waiting on ``flock`` instead
    wakes the next worker the moment the lock is released, and the waiting worker's read-ahead
    thread goes on fetching and parsing meanwhile. The lock covers only a batch's writes and
    commit; every other write still relies on SQLite's busy timeout, and the kernel drops the
    lock of a process that dies. PostgreSQL and in-memory SQLite take no lock.

    ``writes_done`` (optional) is cleared while the turn is held and set when it is given back:
    the read-ahead thread waits on it before parsing, so that the turn, which other workers wait
    for, is not stretched by sharing the GIL.
    """

    def __init__(self, writes_done: threading.Event | None = None) -> None:
        self._fd: int | None = None
        self._writes_done = writes_done

    def take(self) -> None:
        """Wait for the turn (once; later calls do nothing)."""
        if self._fd is not None:
            return
        path = writer_lock_path()
        if path is None:
            self._fd = -1
            return
        try:
            # Read-only is enough for flock. Private like the database file beside it: whoever may
            # write the database (its owner) may take the turn.
            fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o600)
        except OSError as exc:
            logger.warning("cannot open the writer lock %s (%s): batches wait on SQLite's busy timeout "
                           "instead", path, exc)
            self._fd = -1
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:  # e.g. a file system without locks: no turns, but no failed scan either
            os.close(fd)
            logger.warning("cannot lock %s (%s): batches wait on SQLite's busy timeout instead", path, exc)
            self._fd = -1
            return
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        if self._writes_done is not None:
            self._writes_done.clear()

    def release(self) -> None:
        """Give the turn back (after the commit or the rollback)."""
        fd, self._fd = self._fd, None
        if fd is not None and fd >= 0:
            os.close(fd)  # closing the only descriptor of this open file releases its flock
            if self._writes_done is not None:
                self._writes_done.set()


def writer_lock_path() -> str | None:
    """The lock file beside a SQLite database file, or None for other databases."""
    url = db.engine.url
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:" or \
            database.startswith("file:"):
        return None
    return database + "-writer.lock"
