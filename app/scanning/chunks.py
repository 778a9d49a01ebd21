"""One chunk of a folder: read it (fetch, parse, filter), then store it in one transaction.

Reading touches neither the database nor the Flask app, so the next chunk can be read in a
helper thread while the current one is stored (``ReadAhead``): storing mostly waits on the
database and fetching on the mail server, and both waits release the GIL. Only chunks of at most
``READ_AHEAD_MAX_BYTES`` are read ahead, so memory stays bounded by one batch plus that. The
helper thread is the only user of the IMAP connection while it runs, and leaving the ``with``
waits for it (before the logout). No fetch starts once the run was asked to stop, and a stop
that comes while a fetch is slow cuts it short. On a SQLite file the reader also pauses while a batch holds
the writer's turn (``runtime.WriterTurn``).

Storing a chunk writes its messages, advances the folder (UIDVALIDITY, last UID) and saves the
run's counters in the same commit, so a crash loses nothing and the next run repeats nothing.
"""

from __future__ import annotations

import imaplib
import logging
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from types import TracebackType

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError, OperationalError

from app.extensions import db
from app.models import ScanFolder
from app.scanner import filters, parse, spam
from app.scanner.types import BatchItem, RunCounters
from app.scanning import housekeeping, imap_reads
from app.scanning.progress import merge, save_progress
from app.scanning.runtime import WriterTurn
from app.scanning.setup import FolderScan, RunSetup
from app.scanning.store import batch

logger = logging.getLogger(__name__)

# The next chunk is fetched while the current one is stored only when it is at most this big.
READ_AHEAD_MAX_BYTES = 8 * 1024 * 1024
# While a fetch takes longer than this, the run checks every so often whether it was asked to stop.
STOP_POLL_SECONDS = 1.0

_folders = ScanFolder.__table__


@dataclass
class ReadChunk:
    """A chunk as read: the messages to store, and what reading counted (downloaded, errors)."""

    last_uid: int  # the folder advances to this UID when the chunk is stored
    items: list[BatchItem] = field(default_factory=list)
    counters: RunCounters = field(default_factory=RunCounters)


def read_chunk(client: imaplib.IMAP4, setup: RunSetup, folder: FolderScan, uids: list[int],
               writes_done: threading.Event | None = None) -> ReadChunk:
    """Fetch, parse and filter the messages ``uids`` of ``folder`` (no database).

    With ``writes_done``, each message waits for it before it is parsed. IMAP errors propagate
    (to the caller of ``Future.result()`` in the read-ahead thread).
    """
    plan = folder.plan
    raws, missing = imap_reads.fetch_chunk(client, plan.name, plan.uidvalidity, uids, folder.sizes,
                                           setup.max_message_bytes)
    read = ReadChunk(last_uid=max(uids), counters=RunCounters(downloaded=len(raws)))
    for uid in missing:
        read.counters.add_error(plan.name, uid, "The message was deleted on the server before it could be read.")
    items = read.items
    for raw in raws:
        # Operators must see when the size limit cut a message down to its header.
        if raw.truncated:
            logger.warning("message %s/%s uid %s is %s bytes, over MAX_MESSAGE_BYTES=%s: only its header "
                           "is stored", setup.account_id, plan.name, raw.uid, raw.size, setup.max_message_bytes)
        if writes_done is not None:
            writes_done.wait()
        try:
            parsed = parse.parse_message(raw)
            verdict = filters.evaluate(parsed, setup.rules)
            items.append(BatchItem(parsed, plan.direction, verdict,
                                   spam.spam_reason(parsed, setup.spam_threshold, folder.junk),
                                   archived=plan.archive_below is not None and raw.uid < plan.archive_below))
        except Exception as exc:  # one bad message never stops the run
            logger.warning("message %s/%s uid %s could not be parsed: %s", setup.account_id, plan.name, raw.uid,
                           exc, exc_info=True)
            read.counters.add_error(plan.name, raw.uid,
                                    f"The message could not be read: {type(exc).__name__}: {exc}")
    return read


class ReadAhead:
    """Reads the chunks of one folder in order, in a helper thread, the next one (when small) ahead.

    ``writes_done`` is set while no batch holds the writer's turn; the helper thread waits on it.
    A fetch starts only after the run's stop check passed (``check_stop``, in the calling thread:
    the helper never touches the database) and, for a chunk read ahead, only before the run's time
    budget is spent. While a fetch takes longer than ``STOP_POLL_SECONDS`` the caller checks again
    every so often; a stop then cuts the connection, so the run ends at once and nothing more is
    fetched, even from a slow server.
    """

    def __init__(self, client: imaplib.IMAP4, setup: RunSetup, folder: FolderScan, chunks: list[list[int]],
                 check_stop: Callable[[], None] = lambda: None) -> None:
        self.client = client
        self.setup = setup
        self.folder = folder
        self.chunks = chunks
        self.check_stop = check_stop
        self.writes_done = threading.Event()
        self.writes_done.set()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="scan-read-ahead")
        self._ahead: Future[ReadChunk] | None = None

    def __enter__(self) -> ReadAhead:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._ahead is not None and self._ahead.cancel():
            self._ahead = None
        self._pool.shutdown(wait=True)

    @property
    def has_ahead(self) -> bool:
        """True when the next chunk is already being read."""
        return self._ahead is not None

    def read(self, index: int) -> ReadChunk:
        """Chunk ``index`` read; the next one starts when small enough, the run goes on and has time left."""
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            self.check_stop()
            ahead = self._submit(self.chunks[index])
        read = self._wait(ahead)
        if index + 1 < len(self.chunks):
            following = self.chunks[index + 1]
            if imap_reads.chunk_bytes(following, self.folder.sizes, self.setup.max_message_bytes) \
                    <= READ_AHEAD_MAX_BYTES and not self.setup.past_deadline():
                self.check_stop()
                self._ahead = self._submit(following)
        return read

    def _submit(self, uids: list[int]) -> Future[ReadChunk]:
        return self._pool.submit(read_chunk, self.client, self.setup, self.folder, uids, self.writes_done)

    def _wait(self, future: Future[ReadChunk]) -> ReadChunk:
        """The chunk, checking for a stop while it is slow to come; a stop cuts the connection."""
        # Waited on with wait(), not result(timeout=...): a fetch's own socket timeout is a TimeoutError too.
        while not wait([future], timeout=STOP_POLL_SECONDS).done:
            try:
                self.check_stop()
            except BaseException:
                _cut(self.client)  # the fetch in flight fails at once; the run logs out (or not) after
                raise
        return future.result()


def _cut(client: imaplib.IMAP4) -> None:
    """Shut the connection's socket down, waking a read blocked on it."""
    try:
        client.sock.shutdown(socket.SHUT_RDWR)
    except (OSError, AttributeError):
        pass


def store_chunk(setup: RunSetup, folder: FolderScan, read: ReadChunk, totals: RunCounters,
                writes_done: threading.Event | None = None) -> None:
    """Store one read chunk; advance the folder and the counters in the same commit."""
    turn = WriterTurn(writes_done)
    try:
        stored = RunCounters()
        batch.store_batch(setup.store, read.items, stored, before_writes=turn.take)
        turn.take()  # nothing stored (all duplicates or ignored): the folder and counters still are
        _commit_chunk(setup, folder, read, totals, stored)
    except Exception as exc:
        if isinstance(exc, OperationalError) and not is_conflict(exc):
            raise  # the database itself is unavailable: the run fails, the next one resumes here
        # A uniqueness constraint caught what the key lookup missed (another worker stored the same
        # message meanwhile, from this or another mailbox), or one message's data upset the database
        # or a step: store the batch again one message at a time, so only the culprit is reported and
        # the rest is stored (a message the other worker stored is then found, and linked).
        db.session.rollback()
        if not is_conflict(exc):
            logger.warning("batch store failed for account %s folder %s (%s); retrying one by one",
                           setup.account_id, folder.plan.name, exc, exc_info=True)
        turn.take()
        stored = _store_one_by_one(setup, folder, read)
        _commit_chunk(setup, folder, read, totals, stored)
    finally:
        turn.release()
    merge(totals, read.counters)
    merge(totals, stored)


def _commit_chunk(setup: RunSetup, folder: FolderScan, read: ReadChunk, totals: RunCounters,
                  stored: RunCounters) -> None:
    """Advance the folder, record the actions owed on the server and save the counters with the
    chunk's rows, then commit."""
    housekeeping.record(setup, folder, read.items, read.counters)
    db.session.execute(update(_folders).where(_folders.c.id == folder.folder_id)
                       .values(uidvalidity=folder.plan.uidvalidity, last_uid=read.last_uid))
    trial = RunCounters()
    for part in (totals, read.counters, stored):
        merge(trial, part)
    save_progress(setup.run_id, trial)
    db.session.commit()


def is_conflict(exc: BaseException) -> bool:
    """True when another transaction stored the same row meanwhile: a uniqueness conflict, or a deadlock
    PostgreSQL broke (SQLSTATE 23505, 40P01). Worth storing again, after a rollback. PostgreSQL's COPY
    raises the driver's own error, which carries the SQLSTATE itself."""
    if isinstance(exc, IntegrityError):
        return True
    state = getattr(exc, "sqlstate", None) or getattr(getattr(exc, "orig", None), "sqlstate", None)
    return state in ("23505", "40P01")


def _store_one(setup: RunSetup, item: BatchItem) -> RunCounters:
    """One message in its own transaction. A uniqueness conflict means another worker stored it (or
    its twin from another mailbox) meanwhile and has committed: it is decided once more, and then
    found stored (a duplicate) or linked; a second conflict counts it as a duplicate."""
    for _attempt in range(2):
        one = RunCounters()
        try:
            batch.store_batch(setup.store, [item], one)
            db.session.commit()
            return one
        except Exception as exc:
            db.session.rollback()
            if not is_conflict(exc):
                raise
    return RunCounters(duplicates=1)


def _store_one_by_one(setup: RunSetup, folder: FolderScan, read: ReadChunk) -> RunCounters:
    """Each message in its own transaction: duplicates counted, a failing one reported by UID
    (in ``read.counters``)."""
    stored = RunCounters()
    for item in read.items:
        try:
            one = _store_one(setup, item)
        except OperationalError:
            raise
        except Exception as exc:
            db.session.rollback()
            one = RunCounters()
            reason = str(getattr(exc, "orig", None) or exc).splitlines()[0][:300]
            read.counters.add_error(folder.plan.name, item.parsed.raw.uid,
                                    f"The message could not be stored: {type(exc).__name__}: {reason}")
        merge(stored, one)
    return stored
