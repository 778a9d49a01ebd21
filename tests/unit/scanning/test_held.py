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


def _spam_store(account, messages, spam_uids, handling="store"):
    from app.scanner.types import BatchItem, RunCounters
    from app.scanning.store.batch import load_context, store_batch

    settings = MailSettings.get()
    settings.spam_handling = handling
    db.session.commit()
    ctx = load_context(account, settings)
    counters = RunCounters()
    store_batch(ctx, [BatchItem(m, "incoming", FilterVerdict(),
                                "X-Spam-Flag: YES" if m.raw.uid in spam_uids else None) for m in messages],
                counters)
    db.session.commit()
    return counters


def test_spam_is_stored_without_actions_and_never_reopens_a_ticket(app):
    account = make_account()
    first = store(account, [msg(1, frm="jane@acme.test", mid="t1@acme.test")])
    assert first.tickets_created == 1
    ticket = db.session.scalars(select(Ticket)).one()
    ticket.status = "closed"
    db.session.commit()
    # A new conversation and a reply to the closed ticket, both flagged: nothing opens or reopens.
    counters = _spam_store(account, [msg(2, frm="spammer@junk.test"),
                                     msg(3, frm="jane@acme.test", in_reply_to="t1@acme.test")], {2, 3})
    assert (counters.spam, counters.created, counters.tickets_created, counters.tickets_reopened) == (2, 2, 0, 0)
    db.session.refresh(ticket)
    assert ticket.status == "closed" and db.session.scalar(select(func.count(Ticket.id))) == 1
    kind, words = _held_of(2)
    assert kind == "spam" and "The mail server's spam filter flagged it (X-Spam-Flag: YES)" in words


def test_spam_can_be_ignored_and_is_still_counted(app):
    account = make_account()
    counters = _spam_store(account, [msg(1), msg(2, frm="spammer@junk.test")], {2}, handling="ignore")
    assert (counters.spam, counters.created, counters.ignored, counters.tickets_created) == (1, 1, 0, 1)
    assert db.session.scalar(select(func.count(Email.id))) == 1


def test_spam_counts_nothing_toward_a_loop(app):
    _loop_settings(limit=2, minutes=10)
    account = make_account()
    flood = [msg(i, frm="robot@loop.test", subject=f"Alert {i}", date=T0 + timedelta(seconds=i)) for i in range(1, 6)]
    assert _spam_store(account, flood, {1, 2, 3, 4, 5}).spam == 5
    # Two more from the same sender, not spam: the stored spam does not make them a loop.
    later = [msg(10 + i, frm="robot@loop.test", subject=f"Real {i}", date=T0 + timedelta(minutes=1, seconds=i))
             for i in range(2)]
    counters = store(account, later)
    assert (counters.throttled, counters.tickets_created) == (0, 2)


def _archive_store(account, messages, archived_uids):
    from app.scanner.types import BatchItem, RunCounters
    from app.scanning.store.batch import load_context, store_batch

    ctx = load_context(account, MailSettings.get())
    counters = RunCounters()
    store_batch(ctx, [BatchItem(m, "incoming", FilterVerdict(), archived=m.raw.uid in archived_uids)
                      for m in messages], counters)
    db.session.commit()
    return counters


def test_an_archive_is_stored_and_bound_but_acts_on_no_ticket_and_no_loop(app):
    from app.models import EmailLink
    from tests import factories

    _loop_settings(limit=2, minutes=60)
    contact = factories.contact(email="jane@acme.test")
    account = make_account()
    first = store(account, [msg(1, frm="jane@acme.test", mid="t1@acme.test")])
    ticket = db.session.scalars(select(Ticket)).one()
    ticket.status = "closed"
    db.session.commit()
    old = [msg(10 + i, frm="robot@loop.test", subject=f"Alert {i}", date=T0 + timedelta(seconds=i)) for i in range(5)]
    old.append(msg(20, frm="jane@acme.test", in_reply_to="t1@acme.test"))
    counters = _archive_store(account, old, {10, 11, 12, 13, 14, 20})
    assert first.tickets_created == 1
    assert (counters.archived, counters.created, counters.tickets_created, counters.tickets_reopened,
            counters.throttled) == (6, 6, 0, 0, 0)
    db.session.refresh(ticket)
    assert ticket.status == "closed"
    kind, words = _held_of(20)
    assert kind == "archived" and "already in the mailbox when the scanner began importing it" in words
    reply_id = db.session.scalar(select(Email.id).where(Email.uid == 20))
    links = set(db.session.execute(select(EmailLink.record_type, EmailLink.record_id)
                                   .where(EmailLink.email_id == reply_id)))
    assert {("ticket", ticket.id), ("contact", contact.id)} <= links  # bound as usual
    # New mail from the same robot is handled as usual: the archive counted nothing toward its loop.
    new = [msg(30 + i, frm="robot@loop.test", subject=f"New {i}", date=T0 + timedelta(minutes=1, seconds=i))
           for i in range(2)]
    assert store(account, new).tickets_created == 2
