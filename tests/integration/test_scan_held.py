"""Messages stored without their usual actions, scanned from the real Dovecot: counted in the run
under their own column, said in the run's log, and explained on each e-mail."""

from __future__ import annotations

from datetime import UTC

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Email, MailSettings, Ticket
from app.scanning.run import run_scan
from tests.integration.test_scan_dovecot import mail, make_scanner

pytestmark = pytest.mark.integration


@pytest.fixture
def box(app, dovecot):
    return dovecot.new_user("held")


def test_a_mail_loop_is_counted_as_throttled_and_the_run_says_so(app, dovecot, box):
    login, password = box
    settings = MailSettings.get()
    settings.loop_max_messages, settings.loop_window_minutes = 3, 10
    db.session.commit()
    account = make_scanner(app, dovecot, login, password)
    # Ten new conversations from one robot within ten minutes, a message without a sender, and an auto-reply.
    dovecot.append_many(login, password, "INBOX", [mail(i, frm="robot@loop.test") for i in range(10)])
    no_sender = (b"To: support@corp.test\r\nSubject: Anonymous\r\nMessage-ID: <anon@x.test>\r\n"
                 b"Date: Mon, 02 Nov 2026 11:00:00 +0000\r\n\r\nNobody wrote this.\r\n")
    auto = mail(50, frm="jane@acme.test", subject="Out of office").replace(
        b"Subject:", b"Auto-Submitted: auto-replied\r\nSubject:")
    dovecot.append_many(login, password, "INBOX", [no_sender, auto])

    run = run_scan(account.id, trigger="cli")
    assert run.status == "done", run.message
    assert (run.created, run.tickets_created) == (12, 3)
    assert (run.throttled, run.no_sender, run.automatic, run.ignored) == (7, 1, 1, 0)
    assert "9 stored without opening or reopening tickets" in run.message
    assert "7 loop protection" in run.message and "1 no sender" in run.message
    assert db.session.scalar(select(func.count(Ticket.id))) == 3
    reasons = dict(db.session.execute(select(Email.no_action, func.count()).group_by(Email.no_action)).all())
    assert reasons == {None: 3, "throttled": 7, "no_sender": 1, "automatic": 1}


def _with_headers(raw: bytes, *headers: str) -> bytes:
    return "".join(f"{h}\r\n" for h in headers).encode() + raw


@pytest.mark.parametrize("handling", ["store", "ignore"])
def test_spam_from_the_filter_and_junk_folders_is_counted_and_opens_no_ticket(app, dovecot, box, handling):
    login, password = box
    settings = MailSettings.get()
    settings.spam_handling, settings.spam_score_threshold = handling, 6.0
    db.session.commit()
    # "Quarantine" is marked \Junk by the test Dovecot (special use); "Junk" says so by its name.
    account = make_scanner(app, dovecot, login, password,
                           folders=(("INBOX", "incoming"), ("Quarantine", "incoming"), ("Junk", "incoming")))
    dovecot.append_many(login, password, "INBOX", [
        mail(1),  # a customer: opens a ticket
        _with_headers(mail(2, frm="a@spam.test"), "X-Spam-Flag: YES", "X-Spam-Status: Yes, score=9.1"),
        _with_headers(mail(3, frm="b@spam.test"), "X-Rspamd-Action: add header"),
        _with_headers(mail(4, frm="c@spam.test"), "X-Spamd-Result: default: False [7.20 / 15.00]"),
        _with_headers(mail(5, frm="d@ok.test"), "X-Spamd-Result: default: False [2.00 / 15.00]"),  # clean
    ])
    dovecot.append(login, password, "Quarantine", mail(6, frm="e@spam.test"))
    dovecot.append(login, password, "Junk", mail(7, frm="f@spam.test"))

    run = run_scan(account.id, trigger="cli")
    assert run.status == "done", run.message
    assert (run.spam, run.tickets_created, run.ignored) == (5, 2, 0)
    assert "5 spam" in run.message
    assert db.session.scalar(select(func.count(Ticket.id))) == 2
    stored = dict(db.session.execute(select(Email.from_addr, Email.no_action)).all())
    if handling == "store":
        assert run.created == 7
        assert {a: k for a, k in stored.items() if k} == {
            f"{x}@spam.test": "spam" for x in "abcef"}
        junk = db.session.scalar(select(Email.no_action_reason).where(Email.from_addr == "e@spam.test"))
        assert "it is in a Junk folder" in junk
    else:
        assert run.created == 2 and set(stored) == {"jane@acme.test", "d@ok.test"}


def test_an_archive_import_opens_no_ticket_across_runs_and_new_mail_is_handled_as_usual(app, dovecot, box):
    login, password = box
    settings = MailSettings.get()
    settings.loop_max_messages, settings.loop_window_minutes, settings.max_per_run = 3, 60, 4
    db.session.commit()
    account = make_scanner(app, dovecot, login, password)
    account.archive_existing = True
    db.session.commit()
    # Years of mail: a robot's ten alerts and five customers' questions, more than one run's budget.
    dovecot.append_many(login, password, "INBOX", [mail(i, frm="robot@loop.test") for i in range(10)])
    dovecot.append_many(login, password, "INBOX", [mail(20 + i, frm=f"c{i}@acme.test") for i in range(5)])

    runs = [run_scan(account.id, trigger="cli") for _ in range(4)]
    assert [r.created for r in runs] == [4, 4, 4, 3]
    assert sum(r.archived for r in runs) == 15
    assert sum(r.tickets_created + r.throttled for r in runs) == 0
    assert db.session.scalar(select(func.count(Ticket.id))) == 0
    # Mail that comes after the import began opens tickets, and the archived alerts count toward no loop.
    dovecot.append_many(login, password, "INBOX", [mail(40 + i, frm="robot@loop.test") for i in range(2)])
    dovecot.append(login, password, "INBOX", mail(50, frm="new@acme.test"))
    after = run_scan(account.id, trigger="cli")
    assert (after.created, after.archived, after.tickets_created, after.throttled) == (3, 0, 3, 0)


def test_only_mail_since_a_day_is_read_and_the_folder_moves_past_the_rest(app, dovecot, box):
    from datetime import date, datetime

    login, password = box
    account = make_scanner(app, dovecot, login, password)
    account.since_date = date(2025, 1, 1)
    db.session.commit()
    old = datetime(2020, 3, 1, 12, 0, tzinfo=UTC)
    dovecot.append_many(login, password, "INBOX", [mail(1), mail(2)], date_time=old)
    dovecot.append(login, password, "INBOX", mail(3))  # received now
    dovecot.append_many(login, password, "INBOX", [mail(4)], date_time=old)  # the last UID is old mail

    run = run_scan(account.id, trigger="cli")
    assert run.status == "done", run.message
    assert (run.downloaded, run.created, run.tickets_created) == (1, 1, 1)
    assert db.session.scalar(select(Email.message_id)) == "q3@acme.test"
    # Nothing is left to look at: the next run is one STATUS, and reads nothing.
    again = run_scan(account.id, trigger="cli")
    assert (again.downloaded, again.created) == (0, 0)
    dovecot.append(login, password, "INBOX", mail(5))
    assert run_scan(account.id, trigger="cli").created == 1
