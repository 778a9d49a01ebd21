"""The scan's runtime: SQLite writer turns, and the interpreter settings restored when scans overlap."""

from __future__ import annotations


def test_sqlite_file_writers_take_turns_and_other_databases_take_no_lock(tmp_path, app):
    """Batch writes on one SQLite file are serialized by a kernel lock that wakes the next writer
    at once; PostgreSQL and in-memory SQLite need none (``app`` is one of those two)."""
    import threading
    import time

    from app.scanning.runtime import WriterTurn
    from tests.conftest import build_app, drop_app

    free = WriterTurn()
    free.take()
    assert free._fd == -1  # no lock file, nothing to release
    free.release()

    file_app = build_app(f"sqlite:///{tmp_path / 'turns.db'}", "sqlite", tmp_path)
    try:
        order: list[str] = []
        with file_app.app_context():
            first = WriterTurn()
            first.take()
            assert (tmp_path / "turns.db-writer.lock").exists()

            def second_writer():
                with file_app.app_context():
                    turn = WriterTurn()
                    turn.take()
                    order.append("second")
                    turn.release()

            other = threading.Thread(target=second_writer)
            other.start()
            time.sleep(0.3)
            assert order == []  # still waiting for the first writer's turn
            order.append("first done")
            first.release()
            other.join(5)
        assert order == ["first done", "second"]
        # A lock file that cannot be opened (here: a directory in its place) costs the turns, not
        # the scan: the batch goes on and relies on SQLite's busy timeout.
        (tmp_path / "turns.db-writer.lock").unlink()
        (tmp_path / "turns.db-writer.lock").mkdir()
        with file_app.app_context():
            blocked = WriterTurn()
            blocked.take()
            assert blocked._fd == -1
            blocked.release()
    finally:
        drop_app(file_app)


def test_scan_runtime_settings_are_restored_when_scans_overlap_in_threads():
    """Two overlapping scans in one process: the settings change while any runs and come back to
    what they were before the first, whichever ends last."""
    import gc
    import sys
    import threading

    from app.scanning.runtime import scan_runtime

    before = (gc.get_threshold(), sys.getswitchinterval())
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()

    def first():
        with scan_runtime():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    other = threading.Thread(target=first)
    other.start()
    first_in.wait(5)
    with scan_runtime():
        second_in.set()
        first_out.wait(5)  # the first scan ends while this one still runs
        assert sys.getswitchinterval() <= 0.001 and gc.get_threshold()[0] >= 20_000
    other.join(5)
    assert (gc.get_threshold(), sys.getswitchinterval()) == before
