"""The pure steps of backlogs: which UIDs a run with a budget lists, and the ids of a scan's continuation."""

from __future__ import annotations

import math
import time

import pytest

from app.jobqueue import jobs
from app.scanner.types import FolderPlan
from app.scanning.folders import _window_end
from app.scanning.setup import NO_BUDGET, FolderScan, RunSetup


def _folder(after: int, uidnext: int) -> FolderScan:
    plan = FolderPlan(name="INBOX", direction="incoming", uidvalidity=1, after_uid=after, reset=False, has_new=True)
    return FolderScan(1, plan, uidnext=uidnext)


def test_a_run_with_a_budget_lists_one_window_of_uids():
    assert _window_end(_folder(0, 50_001), 0, 500, 500) == 500
    assert _window_end(_folder(10_000, 50_001), 10_000, 200, 500) == 10_200


def test_the_last_window_and_unbounded_runs_list_to_the_end():
    # Near UIDNEXT the window reaches to "*", so mail that came during the run is seen too.
    assert _window_end(_folder(49_800, 50_001), 49_800, 500, 500) is None
    assert _window_end(_folder(0, 50_001), 0, NO_BUDGET, NO_BUDGET) is None
    # A server that sends no UIDNEXT: the whole rest is listed.
    assert _window_end(_folder(0, 0), 0, 500, 500) is None


def test_a_continuation_takes_the_scanners_other_job_id():
    assert jobs.continuation_job_id("scan-7") == "backlog-7"
    assert jobs.continuation_job_id("backlog-7") == "scan-7"
    assert jobs.scanner_of_job("backlog-7") == jobs.scanner_of_job("scan-7") == 7
    assert jobs.scanner_of_job("refresh-7") is None
    with pytest.raises(ValueError):
        jobs.continuation_job_id("refresh-7")
    # Workers take fresh scans before the continuations of backlogs.
    assert jobs.QUEUE_NAMES[:2] == jobs.SCAN_QUEUES == (jobs.SCAN_QUEUE, jobs.BACKLOG_QUEUE)


def test_the_time_budget_is_spent_only_after_its_deadline():
    base = dict(run_id=1, account_id=1, store=None, rules=[], folders=[], batch_size=10, batch_bytes=1,
                max_message_bytes=1, budget=10)
    assert not RunSetup(**base).past_deadline() and RunSetup(**base).deadline == math.inf
    assert RunSetup(**base, deadline=time.monotonic() - 1).past_deadline()
    assert not RunSetup(**base, deadline=time.monotonic() + 60).past_deadline()
