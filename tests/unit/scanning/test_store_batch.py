"""store_batch: one batch of parsed messages into e-mails, links and tickets (SQLite and PostgreSQL).

Messages are built as ``ParsedMessage`` values directly, so these tests need
no IMAP server; the real pipeline steps (bind, tickets, direction, throttle)
run inside ``store_batch``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import event, func, select

from app.extensions import db
from app.models import Email, EmailAttachment, MailSettings, Ticket
from app.scanner.types import AttachmentData, BatchItem, FilterVerdict, RunCounters
from app.scanning.store.batch import load_context, store_batch
from tests import factories
from tests.unit.scanning.store_helpers import T0, links_of, make_account, msg, store


def test_batch_is_stored_once_and_deduped_by_key(app):
    account = make_account(actions="create_email,bind_email")
    attachment = AttachmentData(filename="report.pdf", content_type="application/pdf", data=b"%PDF-1.4 x")
    first = store(account, [msg(1, attachments=[attachment]), msg(2)])
    assert (first.created, first.duplicates) == (2, 0)
    again = store(account, [msg(1), msg(2)])
    assert (again.created, again.duplicates) == (0, 2)
    assert db.session.scalar(select(func.count(Email.id))) == 2
    att = db.session.scalars(select(EmailAttachment)).one()
    assert (att.filename, att.size, att.data) == ("report.pdf", 10, b"%PDF-1.4 x")
    # The same message in another folder (same Message-ID) is not stored twice either.
    moved = msg(1, folder="Archive")
    assert store(account, [moved]).duplicates == 1


def test_same_message_id_on_different_content_is_kept_apart(app):
    account = make_account(actions="create_email")
    store(account, [msg(1, mid="dup@acme.test", body=b"first text")])
    counters = store(account, [msg(2, mid="dup@acme.test", body=b"a different, longer text")])
    assert counters.created == 1
    rows = db.session.scalars(select(Email).order_by(Email.uid)).all()
    assert [r.message_id for r in rows] == ["dup@acme.test", "dup@acme.test"]
    assert "also used by a different message" in rows[1].defects


def test_reused_message_id_within_one_batch_and_its_copies(app):
    """The content-hash key is looked up only for taken keys: a reuse inside one batch is kept
    apart, and a copy of the reusing message (same content) is a duplicate, in or across batches."""
    account = make_account(actions="create_email")
    first = msg(1, mid="dup@acme.test", body=b"first text")
    other = msg(2, mid="dup@acme.test", body=b"a different, longer text")
    copy = msg(3, mid="dup@acme.test", body=b"a different, longer text")
    counters = store(account, [first, other, copy])
    assert (counters.created, counters.duplicates) == (2, 1)
    later = store(account, [msg(4, mid="dup@acme.test", body=b"a different, longer text")])
    assert (later.created, later.duplicates) == (0, 1)
    keys = db.session.scalars(select(Email.message_key).order_by(Email.uid)).all()
    assert keys[0] == "dup@acme.test" and keys[1].startswith("dup@acme.test#sha256:")


def test_text_that_databases_refuse_is_cleaned(app):
    account = make_account(actions="create_email")
    weird = msg(1, subject="nul\x00 and lone surrogate \udcff", mid="x" * 400)
    assert store(account, [weird]).created == 1
    row = db.session.scalars(select(Email)).one()
    assert "\x00" not in row.subject and len(row.message_key) <= 300


def test_binding_uses_only_the_chosen_search_fields(app):
    org = factories.organization(email="info@acme.test")
    jane = factories.contact(email="jane@acme.test", org=org)
    lead = factories.lead(email="lead@prospect.test")
    bob = factories.user(username="bob", email="bob@corp.test")
    account = make_account(actions="create_email,bind_email", search_fields="contacts,leads,users")
    counters = store(account, [msg(1, cc=("lead@prospect.test", "bob@corp.test", "info@acme.test"))])
    links = links_of(1)
    assert ("contact", jane.id) in links and ("lead", lead.id) in links and ("user", bob.id) in links
    # organizations is not a chosen search field: info@acme.test is not looked up as an organization.
    assert not any(t == "organization" and i == org.id and ("contact", jane.id) not in links for t, i in links)
    assert counters.bound == 1


def test_without_bind_action_nothing_is_linked(app):
    factories.contact(email="jane@acme.test")
    account = make_account(actions="create_email")
    counters = store(account, [msg(1)])
    assert counters.created == 1 and counters.bound == 0
    assert links_of(1) == set()


def test_replies_bind_to_what_their_parent_was_bound_to(app):
    jane = factories.contact(email="jane@acme.test")
    account = make_account(actions="create_email,bind_email")
    store(account, [msg(1, mid="parent@acme.test")])
    # A stranger replying in the thread (another batch) is bound through the parent.
    store(account, [msg(2, frm="someone@elsewhere.test", in_reply_to="parent@acme.test")])
    assert ("contact", jane.id) in links_of(2)
    # And within one batch, a reply right after its parent.
    store(account, [msg(3, mid="p3@acme.test"), msg(4, frm="x@y.test", refs=["p3@acme.test"])])
    assert ("contact", jane.id) in links_of(4)


def test_create_ticket_from_sender_with_assignee_and_replies_join_it(app):
    agent = factories.user(username="agent", email="agent@corp.test")
    org = factories.organization(email="info@acme.test")
    jane = factories.contact(email="jane@acme.test", org=org)
    account = make_account(assignee=agent)
    counters = store(account, [msg(1, mid="t1@acme.test"), msg(2, in_reply_to="t1@acme.test", subject="Re: x")])
    assert counters.tickets_created == 1
    ticket = db.session.scalars(select(Ticket)).one()
    assert ticket.number == f"TT-{ticket.id:06d}"
    assert (ticket.contact_id, ticket.organization_id, ticket.assignee_id) == (jane.id, org.id, agent.id)
    assert ticket.requester_email == "jane@acme.test" and ticket.status == "open"
    assert ticket.account_id == account.id  # made from this mailbox: it follows the mailbox's grants
    assert ("ticket", ticket.id) in links_of(1) and ("ticket", ticket.id) in links_of(2)


def test_no_ticket_without_the_action_or_for_automatic_mail(app):
    factories.contact(email="jane@acme.test")
    account = make_account(actions="create_email,bind_email")
    assert store(account, [msg(1)]).tickets_created == 0
    account2 = make_account()
    account2.login = "other@corp.test"
    db.session.commit()
    counters = store(account2, [msg(11, mid="auto@acme.test", automatic="Auto-Submitted: auto-replied")])
    assert counters.tickets_created == 0 and counters.created == 1


def test_closed_ticket_reopened_by_its_customer(app):
    jane = factories.contact(email="jane@acme.test")
    ticket = factories.ticket(status="closed", contact=jane)
    account = make_account()
    counters = store(account, [msg(1, subject=f"Re: [{ticket.number}] Printer broken")])
    db.session.refresh(ticket)
    assert ticket.status == "open" and counters.tickets_reopened == 1 and counters.tickets_created == 0
    assert ("ticket", ticket.id) in links_of(1)


def test_closed_ticket_policy_new_ticket_refers_to_it(app):
    settings = MailSettings.get()
    settings.closed_ticket_policy = "new_ticket"
    db.session.commit()
    jane = factories.contact(email="jane@acme.test")
    ticket = factories.ticket(status="closed", contact=jane)
    account = make_account()
    counters = store(account, [msg(1, subject=f"Re: [{ticket.number}] again")])
    assert counters.tickets_created == 1
    new = db.session.scalars(select(Ticket).where(Ticket.id != ticket.id)).one()
    assert new.parent_id == ticket.id
    db.session.refresh(ticket)
    assert ticket.status == "closed"


def test_waiting_ticket_becomes_answered(app):
    jane = factories.contact(email="jane@acme.test")
    ticket = factories.ticket(status="waiting", contact=jane)
    account = make_account()
    store(account, [msg(1, subject=f"Re: [{ticket.number}] here is the info")])
    db.session.refresh(ticket)
    assert ticket.status == "answered"


def test_foreign_ticket_number_gets_its_own_ticket(app):
    jane = factories.contact(email="jane@acme.test")
    ticket = factories.ticket(status="open", contact=jane)
    account = make_account()
    counters = store(account, [msg(1, frm="stranger@evil.test", subject=f"Re: [{ticket.number}] hello")])
    assert counters.tickets_created == 1
    assert ("ticket", ticket.id) not in links_of(1)
    own = db.session.scalars(select(Ticket).where(Ticket.id != ticket.id)).one()
    assert own.requester_email == "stranger@evil.test" and ("ticket", own.id) in links_of(1)


def test_loop_throttle_stops_ticket_creation(app):
    settings = MailSettings.get()
    settings.loop_max_messages, settings.loop_window_minutes = 3, 10
    db.session.commit()
    account = make_account()
    # Six new threads from one sender within a few minutes: a loop.
    burst = [msg(i, frm="robot@loop.test", subject=f"Alert {i}", date=T0 + timedelta(seconds=20 * i))
             for i in range(1, 7)]
    counters = store(account, burst[:2])
    counters2 = store(account, burst[2:])
    assert counters.tickets_created + counters2.tickets_created == 3
    assert db.session.scalar(select(func.count(Email.id))) == 6  # all stored anyway
    # The same number of threads spread over days is not a loop.
    calm = [msg(100 + i, frm="calm@acme.test", subject=f"Topic {i}", date=T0 + timedelta(days=i))
            for i in range(6)]
    assert store(account, calm).tickets_created == 6


def test_ignored_messages_are_counted_not_stored(app):
    account = make_account()
    counters = store(account, [msg(1), msg(2)], verdicts={1: FilterVerdict(store=False, tickets=False, rule_id=1),
                                                          2: FilterVerdict(store=True, tickets=False, rule_id=2)})
    assert (counters.ignored, counters.created, counters.tickets_created) == (1, 1, 0)


def test_without_create_email_nothing_is_stored(app):
    account = make_account(actions="bind_email,create_ticket")
    counters = store(account, [msg(1)])
    assert counters.created == 0 and db.session.scalar(select(func.count(Email.id))) == 0


def test_direction_of_outgoing_and_internal_mail(app):
    factories.user(username="bob", email="bob@corp.test")
    settings = MailSettings.get()
    settings.internal_domains = "corp.test"
    db.session.commit()
    account = make_account(actions="create_email")
    store(account, [msg(1, frm="bob@corp.test", to=("jane@acme.test",))], direction="outgoing")
    store(account, [msg(2, frm="bob@corp.test", to=("support@corp.test",))])
    store(account, [msg(3)])
    directions = dict(db.session.execute(select(Email.uid, Email.direction)).all())
    assert directions == {1: "sent", 2: "internal", 3: "received"}


@pytest.mark.parametrize("size", [5, 60])
def test_query_count_per_batch_does_not_grow_with_the_batch(app, size):
    for i in range(20):
        factories.contact(email=f"c{i}@acme.test")
    account = make_account()
    statements = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    messages = [msg(i, frm=f"c{i % 25}@acme.test", cc=(f"c{(i + 1) % 25}@acme.test",),
                    in_reply_to=f"m{i - 1}@acme.test" if i % 3 == 0 else None)
                for i in range(1, size + 1)]
    ctx = load_context(account, MailSettings.get())
    items = [BatchItem(m, "incoming") for m in messages]
    event.listen(db.engine, "before_cursor_execute", count)
    try:
        store_batch(ctx, items, RunCounters())
        db.session.commit()
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    # 5 lookups + tickets (insert, number update) + e-mails + attachments/links + the e-mails' mailbox
    # links + the hour's count for the start page's board: bounded, whatever the size.
    # (insertmanyvalues may split a very large insert; 60 rows fit in one statement.)
    assert len([s for s in statements if not s.lstrip().upper().startswith(("SAVEPOINT", "RELEASE"))]) <= 12
    assert db.session.scalar(select(func.count(Email.id))) == size


def test_bulk_written_dates_compare_like_orm_written_ones(app):
    """Rows written in bulk must hold dates in the same form as the ORM, or comparisons go wrong."""
    account = make_account(actions="create_email")
    when = datetime(2026, 1, 2, 3, 4, 5)
    store(account, [msg(1, date=when)])
    assert db.session.scalar(select(func.count(Email.id)).where(Email.date == when)) == 1
    assert db.session.scalar(select(func.count(Email.id)).where(Email.date >= when)) == 1


def test_bulk_written_values_read_back_exactly(app):
    """Every value kind the batch writes (text with COPY's special characters, every byte value,
    NULLs, dates with and without microseconds, booleans) reads back as it was written."""
    account = make_account(actions="create_email")
    tricky = "tab\there\nnew line \\N back\\slash \r é 😀 \\\\"
    every_byte = bytes(range(256)) * 3
    one = msg(1, subject=tricky, body=every_byte, date=datetime(2026, 1, 2, 3, 4, 5, 678901),
              attachments=[AttachmentData(filename="a\\b\tc.bin", content_type="application/octet-stream",
                                          data=every_byte, content_id=None, is_inline=True)])
    two = msg(2, subject="", mid="", date=datetime(2026, 1, 2, 3, 4, 5))
    two.in_reply_to = None
    assert store(account, [one, two]).created == 2
    db.session.expire_all()
    first, second = db.session.scalars(select(Email).order_by(Email.uid)).all()
    assert first.subject == tricky and first.raw == one.raw.data and every_byte in first.raw
    assert first.date == datetime(2026, 1, 2, 3, 4, 5, 678901) and second.date == datetime(2026, 1, 2, 3, 4, 5)
    assert first.is_automatic is False and first.has_remote_content is False
    assert second.message_id is None and second.in_reply_to is None and second.subject == ""
    attachment = db.session.scalars(select(EmailAttachment)).one()
    assert attachment.data == every_byte and attachment.filename == "a\\b\tc.bin"
    assert attachment.is_inline is True and attachment.content_id is None and attachment.size == 768
