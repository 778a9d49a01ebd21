"""The watcher's pieces without a server: back-off, rendezvous hashing, IMAP responses, new-mail
rules, and the schedule's treatment of watched scanners."""

from __future__ import annotations

import random
from datetime import timedelta

from app.extensions import db
from app.models import MailSettings
from app.watch.backoff import Backoff
from app.watch.imap import Response, quote_folder
from app.watch.leases import owner
from app.watch.mailbox import MailboxWatch
from app.watch.settings import WatchSettings
from app.watch.targets import WatchTarget
from tests.unit.scanning.store_helpers import make_account


def test_backoff_grows_while_connections_die_young_and_starts_again_after_a_healthy_one():
    backoff = Backoff(first=1.0, longest=20.0, healthy=60.0, rng=random.Random(1))
    ceilings = []
    for _ in range(7):
        ceilings.append(backoff.ceiling())
        assert 0.0 <= backoff.next_wait(lived=3.0) <= ceilings[-1]
    assert ceilings == [1.0, 2.0, 4.0, 8.0, 16.0, 20.0, 20.0]
    backoff.next_wait(lived=120.0)  # that connection lived: the count starts again
    assert backoff.ceiling() == 2.0


def test_backoff_floor_for_refused_logins():
    backoff = Backoff(first=60.0, longest=900.0, shortest=30.0, rng=random.Random(2))
    assert all(backoff.next_wait(0.0) >= 30.0 for _ in range(20))


def test_rendezvous_moves_only_the_new_watchers_share():
    scanners = range(1, 2001)
    two = ["hostA:1:aa", "hostB:2:bb"]
    three = [*two, "hostC:3:cc"]
    before = {s: owner(s, two) for s in scanners}
    after = {s: owner(s, three) for s in scanners}
    moved = [s for s in scanners if before[s] != after[s]]
    assert all(after[s] == "hostC:3:cc" for s in moved), "a scanner only ever moves to the new watcher"
    assert 500 < len(moved) < 830, f"about a third moves, not {len(moved)}"
    # A watcher leaving hands on only its own scanners.
    without_a = {s: owner(s, three[1:]) for s in scanners}
    assert all(without_a[s] == after[s] for s in scanners if after[s] != "hostA:1:aa")
    assert owner(1, []) is None


def test_imap_responses_are_read_as_the_watcher_needs_them():
    assert Response(b"* 12 EXISTS").numbered() == (12, "EXISTS")
    assert Response(b"* 3 expunge").numbered() == (3, "EXPUNGE")
    assert Response(b"* OK [UIDNEXT 42] Predicted next UID").code() == ("UIDNEXT", "42")
    assert Response(b"W3 OK [CAPABILITY IMAP4rev1 IDLE] Logged in").code() == ("CAPABILITY", "IMAP4rev1 IDLE")
    assert Response(b'* STATUS "Sent Items" (MESSAGES 2 UIDNEXT 3)').status() == \
        ("Sent Items", {"MESSAGES": 2, "UIDNEXT": 3})
    assert Response(b"* STATUS INBOX (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 7 HIGHESTMODSEQ 9)").status() == \
        ("INBOX", {"MESSAGES": 1, "UIDNEXT": 2, "UIDVALIDITY": 7, "HIGHESTMODSEQ": 9})
    assert Response(b"* STATUS {5} (UIDNEXT 9)", [b"A\"b c"]).status() == ('A"b c', {"UIDNEXT": 9})
    assert Response(b'* STATUS "&AMQ-rger" (UIDNEXT 4)').status() == ("Ärger", {"UIDNEXT": 4})
    assert quote_folder('Ärger "x"') == b'"&AMQ-rger \\"x\\""'


class _Hooks:
    def __init__(self) -> None:
        self.settings = WatchSettings()
        self.events: list[str] = []

    def new_mail(self, account_id: int, folder: str) -> None:
        self.events.append(folder)


def _watch(progress: dict) -> tuple[MailboxWatch, _Hooks]:
    target = WatchTarget(account_id=1, name="x", server_id=1, host="h", port=143, security="none",
                         validate_cert=True, oauth=False, login="a", secret_version="s", folders=("INBOX",),
                         max_connections=10, progress=progress)
    hooks = _Hooks()
    return MailboxWatch(target, hooks), hooks  # type: ignore[arg-type]


def test_new_mail_is_reported_when_uidnext_moved_since_the_last_look_or_beyond_what_was_stored():
    watch, hooks = _watch({"INBOX": (7, 10)})
    watch._seen("INBOX", {"UIDNEXT": 11, "UIDVALIDITY": 7})  # the scans stored everything
    assert hooks.events == []
    watch._seen("INBOX", {"UIDNEXT": 11, "UIDVALIDITY": 7})
    assert hooks.events == []
    watch._seen("INBOX", {"UIDNEXT": 12, "UIDVALIDITY": 7})  # after a reconnect: one came meanwhile
    assert hooks.events == ["INBOX"]
    watch._seen("INBOX", {"UIDNEXT": 12, "UIDVALIDITY": 8})  # renumbered
    assert hooks.events == ["INBOX", "INBOX"]

    behind, hooks = _watch({"INBOX": (7, 10)})
    behind._seen("INBOX", {"UIDNEXT": 15, "UIDVALIDITY": 7})  # came while no watcher listened
    assert hooks.events == ["INBOX"]


def test_idle_exists_counts_only_growth():
    watch, hooks = _watch({})
    exists = watch._exists("INBOX", [Response(b"* 5 EXISTS"), Response(b"* 1 RECENT")], 4)
    assert (exists, hooks.events) == (5, ["INBOX"])
    exists = watch._exists("INBOX", [Response(b"* 2 EXPUNGE"), Response(b"* 4 EXISTS")], exists)
    assert (exists, hooks.events) == (4, ["INBOX"])


def test_the_schedule_scans_watched_scanners_only_as_a_backstop(app):
    from app.models.base import utcnow
    from app.tasks import schedule

    MailSettings.get().check_frequency_minutes = 5
    watched, unwatched, old = make_account(), make_account(), make_account()
    watched.last_run_at = unwatched.last_run_at = utcnow() - timedelta(minutes=10)
    old.last_run_at = utcnow() - timedelta(minutes=90)
    db.session.commit()
    due = schedule.due_scanners(watched={watched.id, old.id}, backstop=timedelta(hours=1))
    assert due == [unwatched.id, old.id]
