"""The pure steps of housekeeping after storing: which UIDs are owed an action, and the UID sets sent."""

from __future__ import annotations

from dataclasses import replace

from app.scanner.types import BatchItem, FilterVerdict, RunCounters
from app.scanning.housekeeping import expand_uid_set, owed_uids, uid_set
from app.scanning.setup import AfterStore
from tests.unit.scanning.store_helpers import msg


def items(*uids: int, ignored: tuple[int, ...] = (), truncated: tuple[int, ...] = ()) -> list[BatchItem]:
    out = []
    for uid in uids:
        parsed = msg(uid)
        if uid in truncated:
            parsed = replace(parsed, raw=replace(parsed.raw, truncated=True))
        out.append(BatchItem(parsed, "incoming", FilterVerdict(store=uid not in ignored)))
    return out


def test_uid_set_collapses_runs_and_sorts():
    assert uid_set([9, 1, 2, 3, 7, 10, 3]) == "1:3,7,9:10"
    assert uid_set([5]) == "5"
    assert uid_set([]) == ""


def test_expand_uid_set_reads_what_copyuid_reports():
    assert expand_uid_set("1:3,7,10:9") == [1, 2, 3, 7, 10, 9]
    assert expand_uid_set("5") == [5]
    assert expand_uid_set("1:*") == [] and expand_uid_set("x") == []


def test_keep_owes_nothing_and_a_move_without_a_folder_owes_nothing():
    assert owed_uids(AfterStore(), True, "INBOX", items(1, 2), RunCounters()) == []
    assert owed_uids(AfterStore("move", None), True, "INBOX", items(1, 2), RunCounters()) == []


def test_only_stored_messages_are_owed_an_action():
    counters = RunCounters()
    counters.add_error("INBOX", 3, "could not be stored")
    counters.add_error("Other", 2, "an error of another folder")
    owed = owed_uids(AfterStore("mark_read"), True, "INBOX", items(1, 2, 3, 4, ignored=(4,)), counters)
    assert owed == [1, 2]


def test_without_create_email_nothing_is_stored_so_nothing_is_owed():
    assert owed_uids(AfterStore("delete"), False, "INBOX", items(1, 2), RunCounters()) == []


def test_delete_spares_messages_whose_body_was_not_stored_but_move_takes_them():
    batch = items(1, 2, truncated=(2,))
    assert owed_uids(AfterStore("delete"), True, "INBOX", batch, RunCounters()) == [1]
    assert owed_uids(AfterStore("move", "Done"), True, "INBOX", batch, RunCounters()) == [1, 2]


def test_messages_read_from_the_move_target_are_never_moved_again():
    assert owed_uids(AfterStore("move", "Done"), True, "Done", items(1, 2), RunCounters()) == []
