"""mail_store: one batch of parsed messages into e-mails, links and tickets (SQLite and PostgreSQL).

Messages are built as ``ParsedMessage`` values directly, so these tests need
no IMAP server; the real pipeline steps (bind, tickets, direction, throttle)
run inside ``store_batch``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import event, func, select

from app.extensions import db
from app.models import Email, EmailAttachment, EmailLink, MailAccount, MailServer, MailSettings, Ticket
from app.scanner.types import AttachmentData, FilterVerdict, ParsedMessage, RawMessage, RunCounters
from app.services import mail_store
from tests import factories

T0 = datetime(2026, 11, 1, 9, 0, 0)


def make_account(actions="create_email,bind_email,open_ticket,create_ticket",
                 search_fields="contacts,organizations,leads,users", assignee=None) -> MailAccount:
    server = MailServer(name=f"srv-{db.session.scalar(select(func.count(MailServer.id)))}", imap_host="127.0.0.1",
                        imap_port=10143, imap_security="none", smtp_host="127.0.0.1", smtp_port=10025,
                        smtp_security="none")
    account = MailAccount(name="Support", server=server, login="support@corp.test", actions=actions,
                          search_fields=search_fields, assignee_id=assignee.id if assignee else None)
    db.session.add_all([server, account])
    db.session.commit()
    return account


def msg(uid, *, frm="jane@acme.test", to=("support@corp.test",), cc=(), subject="Printer broken", mid=None,
        in_reply_to=None, refs=(), date=None, folder="INBOX", automatic=None, attachments=(),
        body=b"") -> ParsedMessage:
    mid = mid if mid is not None else f"m{uid}@acme.test"
    data = b"Subject: " + subject.encode("utf-8", "replace") + b"\r\n\r\n" + (body or f"body {uid}".encode())
    raw = RawMessage(folder=folder, uidvalidity=7, uid=uid, data=data, size=len(data))
    return ParsedMessage(
        raw=raw, message_id=mid or None, message_key=mid or f"sha256:{uid:064d}", in_reply_to=in_reply_to,
        references=list(refs), subject=subject, from_addr=frm, from_name="", to=list(to), cc=list(cc),
        reply_to=[], date=date or T0 + timedelta(minutes=uid * 30), headers_text=f"Subject: {subject}",
        header_items=[("subject", subject)], body_text=f"body {uid}", body_html="", has_remote_content=False,
        attachments=list(attachments), automatic_reason=automatic)


def store(account, messages, *, direction="incoming", verdicts=None) -> RunCounters:
    ctx = mail_store.load_context(account, MailSettings.get())
    items = [mail_store.BatchItem(m, direction, (verdicts or {}).get(m.raw.uid, FilterVerdict()))
             for m in messages]
    counters = RunCounters()
    mail_store.store_batch(ctx, items, counters)
    db.session.commit()
    return counters


def links_of(uid) -> set[tuple[str, int]]:
    email_id = db.session.scalar(select(Email.id).where(Email.uid == uid))
    return {(t, i) for t, i in db.session.execute(
        select(EmailLink.record_type, EmailLink.record_id).where(EmailLink.email_id == email_id))}


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
    ctx = mail_store.load_context(account, MailSettings.get())
    items = [mail_store.BatchItem(m, "incoming") for m in messages]
    event.listen(db.engine, "before_cursor_execute", count)
    try:
        mail_store.store_batch(ctx, items, RunCounters())
        db.session.commit()
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    # 5 lookups + tickets (insert, number update) + e-mails + attachments/links: bounded, whatever the size.
    # (insertmanyvalues may split a very large insert; 60 rows fit in one statement.)
    assert len([s for s in statements if not s.lstrip().upper().startswith(("SAVEPOINT", "RELEASE"))]) <= 10
    assert db.session.scalar(select(func.count(Email.id))) == size


# ----------------------------------------------------------------- schedule, dead runs, stop, inline queue


def test_schedule_picks_enabled_unblocked_scanners_that_are_due(app):
    from app.models.base import utcnow
    from app.tasks import schedule

    settings = MailSettings.get()
    settings.check_frequency_minutes = 5
    db.session.commit()
    never = make_account()
    recent = make_account()
    recent.last_run_at = utcnow() - timedelta(minutes=1)
    stale = make_account()
    stale.last_run_at = utcnow() - timedelta(minutes=6)
    disabled = make_account()
    disabled.enabled = False
    blocked = make_account()
    blocked.health = "blocked"
    db.session.commit()
    assert schedule.due_scanners() == [never.id, stale.id]
    assert "enqueue-due-scans" in schedule.PERIODIC


def test_dead_runs_are_closed_and_free_their_mailbox(app):
    import socket

    from app.models import ScanRun
    from app.models.base import utcnow
    from app.services import scans

    account = make_account()
    old = ScanRun(account_id=account.id, status="running", runner="elsewhere:1",
                  started_at=utcnow() - timedelta(hours=2), heartbeat_at=utcnow() - timedelta(hours=1))
    gone = ScanRun(account_id=account.id, status="running", runner=f"{socket.gethostname()}:99999999",
                   started_at=utcnow(), heartbeat_at=utcnow())
    alive = ScanRun(account_id=account.id, status="running", runner=scans.runner_id(),
                    started_at=utcnow(), heartbeat_at=utcnow())
    db.session.add_all([old, gone, alive])
    db.session.flush()
    account.running_run_id = gone.id
    db.session.commit()
    assert scans.close_dead_runs() == 2
    db.session.refresh(account)
    assert account.running_run_id is None and account.last_run_status == "failed"
    statuses = {r.id: (r.status, r.message) for r in db.session.scalars(select(ScanRun))}
    assert statuses[old.id] == ("failed", scans.RUN_DIED) and statuses[gone.id][0] == "failed"
    assert statuses[alive.id] == ("running", None)

    with pytest.raises(scans.ScanError):
        scans.request_stop(old.id, 1)
    user = factories.user(username="stopper")
    scans.request_stop(alive.id, user.id)
    db.session.refresh(alive)
    assert alive.stop_requested and alive.stopped_by_id == user.id
    assert scans.scan_progress(account.id)["state"] == "running"


def test_inline_queue_runs_the_scan_in_process(app):
    import socket

    from app.models import ScanRun
    from app.services import scans

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    account = make_account()
    account.server.imap_port = dead_port
    db.session.commit()
    assert app.config["QUEUE_MODE"] == "inline"
    assert scans.enqueue_scan(account.id) == f"scan-{account.id}"
    run = db.session.scalars(select(ScanRun)).one()
    assert run.status == "failed" and run.finished_at and "log in" in run.message
    assert scans.scan_progress(account.id) == {"state": "idle", "run_id": None, "downloaded": 0, "total": 0}
    with pytest.raises(scans.ScanError):
        scans.enqueue_scan(999999)


def test_enqueue_with_redis_down_says_so_in_plain_words(app):
    import socket

    from app.services import scans

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    account = make_account()
    app.config.update(QUEUE_MODE="redis", REDIS_URL=f"redis://127.0.0.1:{dead_port}/0")
    try:
        with pytest.raises(scans.ScanError, match="not reachable"):
            scans.enqueue_scan(account.id)
    finally:
        app.config.update(QUEUE_MODE="inline", REDIS_URL="redis://127.0.0.1:6379/0")
        app.extensions.pop("task_redis", None)


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


def test_sqlite_file_writers_take_turns_and_other_databases_take_no_lock(tmp_path, app):
    """Batch writes on one SQLite file are serialized by a kernel lock that wakes the next writer
    at once; PostgreSQL and in-memory SQLite need none (``app`` is one of those two)."""
    import threading
    import time

    from app.services.scans import _WriterTurn
    from tests.conftest import build_app, drop_app

    free = _WriterTurn()
    free.take()
    assert free._fd == -1  # no lock file, nothing to release
    free.release()

    file_app = build_app(f"sqlite:///{tmp_path / 'turns.db'}", "sqlite", tmp_path)
    try:
        order: list[str] = []
        with file_app.app_context():
            first = _WriterTurn()
            first.take()
            assert (tmp_path / "turns.db-writer.lock").exists()

            def second_writer():
                with file_app.app_context():
                    turn = _WriterTurn()
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
            blocked = _WriterTurn()
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

    from app.services.scans import _scan_runtime

    before = (gc.get_threshold(), sys.getswitchinterval())
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()

    def first():
        with _scan_runtime():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    other = threading.Thread(target=first)
    other.start()
    first_in.wait(5)
    with _scan_runtime():
        second_in.set()
        first_out.wait(5)  # the first scan ends while this one still runs
        assert sys.getswitchinterval() <= 0.001 and gc.get_threshold()[0] >= 20_000
    other.join(5)
    assert (gc.get_threshold(), sys.getswitchinterval()) == before
