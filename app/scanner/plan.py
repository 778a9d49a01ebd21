"""Plan a folder's fetch: what changed since the last run, and which UIDs fit the budget."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice

from app.scanner.types import FolderPlan, FolderState, FolderStatus


def plan_folder(state: FolderState, status: FolderStatus, archive: bool = False) -> FolderPlan:
    """Decide where to resume in a folder from what we remember and what STATUS says now.

    - First scan (no UIDVALIDITY remembered): start from UID 0, not a reset.
    - UIDVALIDITY changed: the server renumbered the folder, so every UID we knew is meaningless:
      rescan from 0 (``reset`` True); Message-ID dedupe keeps stored mail from being stored twice.
    - Unchanged: resume after ``last_uid``; ``has_new`` is False when ``uidnext - 1 <= last_uid``
      (one STATUS round trip is then all a re-scan costs) or when the folder is empty.
    - A server that sends no usable UIDNEXT (0) gets the benefit of the doubt: ``has_new`` when it
      holds messages.
    - With ``archive`` (the scanner imports existing mail as an archive): the boundary remembered
      for the folder is kept; without one (the first run since the option was set), on a first
      scan, or when the folder was renumbered, it is the folder's UIDNEXT now: every message already there is archive.
      Without ``archive`` there is no boundary. A server without a usable UIDNEXT gives none.
    """
    remembered = state.uidvalidity
    if remembered is None:
        after_uid, reset = 0, False
    elif remembered != status.uidvalidity:
        after_uid, reset = 0, True
    else:
        after_uid, reset = max(0, state.last_uid), False
    if status.messages <= 0:
        has_new = False
    elif status.uidnext <= 0:
        has_new = True
    else:
        has_new = status.uidnext - 1 > after_uid
    archive_below = None
    if archive:
        # A boundary holds only for the numbering it was recorded in.
        known = state.archive_below is not None and remembered is not None and not reset
        archive_below = state.archive_below if known else status.uidnext
        archive_below = archive_below if archive_below and archive_below > 0 else None
    return FolderPlan(
        archive_below=archive_below,
        name=state.name,
        direction=state.direction,
        uidvalidity=status.uidvalidity,
        after_uid=after_uid,
        reset=reset,
        has_new=has_new,
    )


def take_budget(uids: list[int], after_uid: int, budget: int) -> list[int]:
    """The UIDs to fetch this run: above ``after_uid``, ascending (oldest first), duplicates
    dropped, at most ``budget`` of them (none when the budget is spent)."""
    if budget <= 0:
        return []
    return sorted({u for u in uids if u > after_uid})[:budget]


def chunks(seq: Iterable, size: int) -> Iterator[list]:
    """Split ``seq`` (any iterable, consumed lazily) into lists of at most ``size`` items."""
    if size < 1:
        raise ValueError("chunk size must be at least 1")
    it = iter(seq)
    while True:
        part = list(islice(it, size))
        if not part:
            return
        yield part
