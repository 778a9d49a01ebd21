"""Messages stored without their usual actions: counted per run by why, and each e-mail says why
(SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from app.extensions import db
from app.models import Email, MailSettings, ScanRun, Ticket
from app.scanner.types import FilterVerdict
from tests.unit.scanning.store_helpers import T0, make_account, msg, store


def _loop_settings(limit=2, minutes=10):
    settings = MailSettings.get()
    settings.loop_max_messages, settings.loop_window_minutes = limit, minutes
    db.session.commit()


def _held_of(uid) -> tuple[str | None, str | None]:
    row = db.session.execute(select(Email.no_action, Email.no_action_reason).where(Email.uid == uid)).one()
    return row.no_action, row.no_action_reason


def test_each_kind_is_counted_under_its_own_counter_and_the_email_says_why(app):
    _loop_settings(limit=2, minutes=10)
    account = make_account()
    loop = [msg(10 + i, frm="robot@loop.test", subject=f"Alert {i}", date=T0 + timedelta(seconds=30 * i))
            for i in range(4)]
    counters = store(account, [
        msg(1, frm="jane@acme.test"),
        msg(2, frm="bot@acme.test", automatic="auto-reply (Auto-Submitted: auto-replied)"),
        msg(3, frm="news@acme.test"),
        msg(4, frm=None, subject="Who sent this?"),
        *loop,
    ], verdicts={3: FilterVerdict(store=True, tickets=False, rule_id=9)})
    assert (counters.automatic, counters.filtered, counters.no_sender, counters.throttled) == (1, 1, 1, 2)
    assert (counters.archived, counters.spam) == (0, 0)
    # Jane and the first two messages of the loop open tickets; nothing else does.
    assert counters.tickets_created == 3
    assert db.session.scalar(select(func.count(Ticket.id))) == 3
    assert db.session.scalar(select(func.count(Email.id))) == 8  # every message is stored
    assert _held_of(1) == (None, None)
    kind, words = _held_of(2)
    assert kind == "automatic" and "automatic mail (auto-reply (Auto-Submitted: auto-replied))" in words
    kind, words = _held_of(3)
    assert kind == "filtered" and "ignore filter (filter 9)" in words
    kind, words = _held_of(4)
    assert kind == "no_sender" and "no sender address" in words and "opens and reopens no ticket" in words
    assert _held_of(10) == (None, None) and _held_of(11) == (None, None)
    kind, words = _held_of(12)
    assert kind == "throttled" and "robot@loop.test had already sent 2 message(s) within 10 minutes" in words


def test_a_message_without_a_sender_opens_no_ticket(app):
    account = make_account()
    counters = store(account, [msg(1, frm=None), msg(2, frm="")])
    assert counters.no_sender == 2 and counters.tickets_created == 0
    assert db.session.scalar(select(func.count(Ticket.id))) == 0
    assert db.session.scalar(select(func.count(Email.id))) == 2


def test_the_pages_show_the_counts_and_the_reason(app, client, auth, admin):
    _loop_settings(limit=1, minutes=10)
    account = make_account()
    counters = store(account, [msg(i, frm="robot@loop.test", date=T0 + timedelta(seconds=i)) for i in range(1, 6)])
    assert counters.throttled == 4
    db.session.add(ScanRun(account_id=account.id, status="done", downloaded=5, created=5,
                           tickets_created=counters.tickets_created, throttled=counters.throttled,
                           automatic=1))
    db.session.commit()
    auth.login("admin")
    history = client.get("/admin/history").get_data(as_text=True)
    assert "Without actions" in history
    assert "4 loop protection" in history and "1 automatic mail" in history
    email_id = db.session.scalar(select(Email.id).where(Email.uid == 3))
    page = client.get(f"/records/emails/{email_id}").get_data(as_text=True)
    assert "No actions" in page
    assert "Loop protection: robot@loop.test had already sent 1 message(s) within 10 minutes" in page
