"""plan, throttle and direction: the small pure steps."""

from datetime import datetime, timedelta

import pytest

from app.scanner.direction import direction_of
from app.scanner.plan import chunks, plan_folder, take_budget
from app.scanner.throttle import SenderWindow
from app.scanner.types import FolderState, FolderStatus
from tests.unit.scanner.helpers import message

T0 = datetime(2026, 11, 1, 9, 0, 0)


def state(uidvalidity, last_uid, direction="incoming"):
    return FolderState(name="INBOX", direction=direction, uidvalidity=uidvalidity, last_uid=last_uid)


def test_first_scan_starts_from_zero_without_reset():
    plan = plan_folder(state(None, 0), FolderStatus(uidvalidity=5, uidnext=11, messages=10))
    assert (plan.after_uid, plan.reset, plan.has_new, plan.uidvalidity) == (0, False, True, 5)
    assert plan.name == "INBOX" and plan.direction == "incoming"


def test_changed_uidvalidity_resets_to_zero():
    plan = plan_folder(state(5, 900), FolderStatus(uidvalidity=6, uidnext=3, messages=2))
    assert (plan.after_uid, plan.reset, plan.has_new, plan.uidvalidity) == (0, True, True, 6)


def test_unchanged_folder_has_nothing_new():
    plan = plan_folder(state(5, 10), FolderStatus(uidvalidity=5, uidnext=11, messages=10))
    assert (plan.after_uid, plan.reset, plan.has_new) == (10, False, False)


def test_unchanged_folder_with_new_mail_resumes_after_last_uid():
    plan = plan_folder(state(5, 10), FolderStatus(uidvalidity=5, uidnext=15, messages=12))
    assert (plan.after_uid, plan.reset, plan.has_new) == (10, False, True)


def test_empty_folder_has_nothing_new_even_after_reset():
    plan = plan_folder(state(5, 10), FolderStatus(uidvalidity=9, uidnext=1, messages=0))
    assert plan.reset and not plan.has_new


def test_take_budget_oldest_first_after_uid_bounded():
    assert take_budget([9, 3, 5, 3, 1, 7], 3, 2) == [5, 7]
    assert take_budget([1, 2], 0, 0) == []
    assert take_budget([4, 5], 5, 10) == []


def test_chunks_lazy_and_bounded():
    assert list(chunks(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(chunks([], 3)) == []
    with pytest.raises(ValueError):
        list(chunks([1], 0))


def test_throttle_counts_window_and_batch():
    t = SenderWindow({"Loop@X.example": [T0 - timedelta(minutes=5), T0 - timedelta(minutes=1)]}, limit=3,
                     window=timedelta(minutes=10))
    assert t.allow("loop@x.example", T0) is True  # third message in the window
    assert t.allow("LOOP@x.example", T0) is False  # fourth: over the limit
    assert t.allow("loop@x.example", T0) is False  # refused ones count too
    assert t.count("loop@x.example", T0) == 5
    assert t.allow(None, T0) is True
    fresh = SenderWindow({}, limit=1, window=timedelta(minutes=10))
    assert fresh.allow("a@b.example", T0) is True
    assert fresh.allow("a@b.example", T0) is False
    off = SenderWindow({"a@b.example": [T0] * 99}, limit=0, window=timedelta(minutes=10))
    assert off.allow("a@b.example", T0) is True


def test_throttle_window_slides_with_the_messages_dates():
    """Mail older than the window does not count; the same number spread over days is no loop."""
    t = SenderWindow({"a@b.example": [T0 - timedelta(hours=2)] * 5}, limit=2, window=timedelta(minutes=10))
    assert t.count("a@b.example", T0) == 0
    assert [t.allow("a@b.example", T0 + timedelta(days=i)) for i in range(4)] == [True] * 4
    assert t.allow("a@b.example", T0 + timedelta(days=3, minutes=1)) is True  # 2nd in its window
    assert t.allow("a@b.example", T0 + timedelta(days=3, minutes=2)) is False  # 3rd: over the limit
    before = {"a@b.example": [T0]}
    SenderWindow(before, limit=1, window=timedelta(minutes=10)).allow("a@b.example", T0)
    assert before == {"a@b.example": [T0]}  # the lookups are never changed


OURS = frozenset({"boss@partner.example"})
DOMAINS = frozenset({"corp.test"})


@pytest.mark.parametrize(
    "sender,to,cc,folder,expected",
    [
        ("alice@customer.example", ["support@corp.test"], [], "incoming", "received"),
        ("sales@corp.test", ["alice@customer.example"], [], "incoming", "sent"),
        ("alice@customer.example", ["support@corp.test"], [], "outgoing", "sent"),
        ("sales@corp.test", ["support@corp.test"], ["boss@partner.example"], "incoming", "internal"),
        ("sales@corp.test", ["support@corp.test"], ["boss@partner.example"], "outgoing", "internal"),
        ("sales@corp.test", ["support@corp.test"], ["x@customer.example"], "incoming", "sent"),
        ("sales@corp.test", [], [], "incoming", "sent"),
        (None, ["support@corp.test"], [], "incoming", "received"),
    ],
)
def test_direction(sender, to, cc, folder, expected):
    parsed = message(from_addr=sender, to=to, cc=cc)
    assert direction_of(parsed, folder, OURS, DOMAINS) == expected
