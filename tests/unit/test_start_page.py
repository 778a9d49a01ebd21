"""The start page: a user's mailboxes, tickets and mail; the administrator's scanner board (SQLite and PostgreSQL)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from sqlalchemy import event

from app.extensions import db
from app.models import Alert, MailAccount, ScannerActivity, ScanRun
from app.models.base import utcnow
from app.models.runs import hour_number
from app.services import scanner_board
from tests import factories


def _page(client, auth, username):
    auth.login(username)
    response = client.get("/")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def _section(html: str, css_class: str) -> str:
    start = html.index(f'class="card {css_class}"')
    return html[start:html.index("</section>", start)]


def test_a_user_sees_their_mailboxes_with_unread_counts_and_an_open_button(app, client, auth, user):
    sales, support = factories.mail_account("Sales", "sales@corp.test"), factories.mail_account("Support")
    factories.mail_account("Hidden", "hidden@corp.test")
    sales.unread_count = 7
    db.session.commit()
    factories.grant(user, sales)
    factories.grant(user, support)

    mailboxes = _section(_page(client, auth, "alice"), "start-mailboxes")
    assert "Sales" in mailboxes and "Support" in mailboxes and "Hidden" not in mailboxes
    assert f'data-mailbox-unread="{sales.id}">7<' in mailboxes
    # One click: a form posting to the hand-off, in a new tab, with its CSRF token.
    assert f'action="/bridge/open/{sales.id}" target="_blank"' in mailboxes
    assert f'data-open-mailbox="{support.id}"' in mailboxes and 'name="csrf_token"' in mailboxes


def test_a_user_sees_the_open_tickets_assigned_to_them_only(app, client, auth, user):
    bob = factories.user(username="bob")
    mine = factories.ticket("Printer on fire", assignee=user)
    factories.ticket("Done already", status="closed", assignee=user)
    factories.ticket("Bob's ticket", assignee=bob)

    tickets = _section(_page(client, auth, "alice"), "start-tickets")
    assert f'href="/records/tickets/{mine.id}"' in tickets and "Printer on fire" in tickets
    assert "(1 open)" in tickets
    assert "Done already" not in tickets and "Bob&#39;s ticket" not in tickets and "Bob's ticket" not in tickets


def test_the_latest_mail_of_a_users_records_respects_the_mailbox_grants(app, client, auth, user):
    granted, other = factories.mail_account("Sales", "sales@corp.test"), factories.mail_account("Board")
    factories.grant(user, granted)
    ticket = factories.ticket("Invoice question", assignee=user, account=granted)
    to_ticket = factories.email(granted, "Re: invoice", related=[ticket])
    to_user = factories.email(granted, "For Alice", related=[user])
    elsewhere = factories.email(other, "Board minutes", related=[user])  # a mailbox Alice may not read
    factories.email(granted, "Not hers")

    mail = _section(_page(client, auth, "alice"), "start-mail")
    assert f'href="/records/emails/{to_ticket.id}"' in mail and f'href="/records/emails/{to_user.id}"' in mail
    assert "Board minutes" not in mail and f"/records/emails/{elsewhere.id}\"" not in mail
    assert "Not hers" not in mail
    # Newest first.
    assert mail.index("For Alice") < mail.index("Re: invoice")


def test_a_user_gets_no_scanner_board(app, client, auth, user):
    factories.mail_account("Sales", "sales@corp.test")
    html = _page(client, auth, "alice")
    assert "scanner-board" not in html and "data-board-scanner" not in html


def _scanner(name, **fields) -> MailAccount:
    account = factories.mail_account(name, f"{name.lower()}@corp.test")
    for key, value in fields.items():
        setattr(account, key, value)
    db.session.commit()
    return account


def test_the_board_names_each_state_most_urgent_first(app, client, auth, admin):
    now = utcnow()
    recent = now - timedelta(minutes=5)
    healthy = _scanner("Healthy", last_success_at=recent, last_run_status="done")
    failing = _scanner("Failing", last_success_at=recent, last_run_status="failed",
                       last_error="The server refused the login for failing@corp.test: Authentication failed.")
    blocked = _scanner("Blocked", health="blocked", blocked_reason="Blocked after 3 failed logins.")
    reconnect = _scanner("Oauth", health="reconnect")
    disabled = _scanner("Disabled", enabled=False)
    behind = _scanner("Behind", last_success_at=now - timedelta(hours=5), last_run_status="done")
    hung = _scanner("Hung", last_success_at=recent, last_run_status="done")
    run = ScanRun(account_id=hung.id, status="running", started_at=now - timedelta(hours=2))
    db.session.add(run)
    db.session.flush()
    hung.running_run_id = run.id
    db.session.add(Alert(kind="no_success", account_id=behind.id, opened_at=now,
                         message="Scanner 'Behind' has had no successful run since yesterday."))
    db.session.commit()

    board = scanner_board.board()
    states = {t.id: t.state for t in board.tiles}
    assert states == {healthy.id: "healthy", failing.id: "failing", blocked.id: "blocked",
                      reconnect.id: "blocked", disabled.id: "disabled", behind.id: "behind", hung.id: "behind"}
    assert [t.state for t in board.tiles] == ["blocked", "blocked", "failing", "behind", "behind", "healthy",
                                              "disabled"]
    assert board.counts == {"failing": 1, "blocked": 2, "behind": 2, "disabled": 1, "healthy": 1}
    assert board.open_alerts == 1

    html = _section(_page(client, auth, "admin"), "scanner-board")
    row = re.search(rf'<tr data-board-scanner="{behind.id}" data-state="behind">(.*?)</tr>', html, re.S).group(1)
    assert f'href="/admin/scanners/{behind.id}/edit"' in row          # one click to the scanner
    assert f'href="/admin/history?mailbox={behind.id}"' in row        # ... or to its history
    assert "no successful run since yesterday" in row                 # its open alert
    assert f"{(now - timedelta(hours=5)):%Y-%m-%d %H:%M} UTC" in row  # last success, in UTC
    failing_row = re.search(rf'data-board-scanner="{failing.id}".*?</tr>', html, re.S).group(0)
    assert "Authentication failed." in failing_row
    assert 'data-count="blocked">2 blocked' in html


def test_the_board_draws_the_mail_of_the_last_24_hours_per_hour(app, admin):
    sales, quiet = _scanner("Sales"), _scanner("Quiet")
    now = utcnow().replace(minute=30)
    current = hour_number(now)
    for hours_ago, messages in ((0, 2), (3, 1), (23, 1), (30, 9)):  # the last one is older than the window
        db.session.add(ScannerActivity(account_id=sales.id, hour=current - hours_ago, messages=messages))
    db.session.commit()

    tiles = {t.id: t for t in scanner_board.board(now).tiles}
    assert tiles[sales.id].messages == 4
    assert tiles[sales.id].per_hour[-1] == 2 and tiles[sales.id].per_hour[-4] == 1 and tiles[sales.id].per_hour[0] == 1
    assert tiles[quiet.id].per_hour == [0] * 24
    points = tiles[sales.id].sparkline.split()
    assert len(points) == 24
    assert points[-1] == f"{scanner_board.SPARK_WIDTH},0"  # the busiest hour reaches the top
    assert points[1] == f"{scanner_board.SPARK_STEP},{scanner_board.SPARK_HEIGHT}"  # an empty hour lies on the base


def test_hour_numbers_count_whole_hours_since_1970_utc():
    assert hour_number(datetime(1970, 1, 1, 0, 59)) == 0
    assert hour_number(datetime(2026, 12, 3, 14, 5)) - hour_number(datetime(2026, 12, 2, 14, 0)) == 24


def test_counts_older_than_two_days_are_pruned(app):
    from app.services import retention

    box = _scanner("Sales")
    now = utcnow()
    db.session.add_all([ScannerActivity(account_id=box.id, hour=hour_number(now) - 49, messages=3),
                        ScannerActivity(account_id=box.id, hour=hour_number(now) - 47, messages=4)])
    db.session.commit()
    assert retention.prune(now).activity == 1
    assert [a.messages for a in db.session.scalars(db.select(ScannerActivity))] == [4]


def test_the_board_costs_the_same_few_queries_for_one_or_many_scanners(app, admin):
    def queries_for_board() -> int:
        seen = []

        def count(*_args):
            seen.append(1)

        event.listen(db.engine, "before_cursor_execute", count)
        try:
            scanner_board.board()
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
        return len(seen)

    now = utcnow()
    one = _scanner("One")
    db.session.add(ScannerActivity(account_id=one.id, hour=hour_number(now), messages=3))
    db.session.commit()
    few = queries_for_board()
    for i in range(30):
        box = _scanner(f"Box {i}")
        db.session.add(ScannerActivity(account_id=box.id, hour=hour_number(now) - i % 24, messages=i + 1))
        db.session.add(Alert(kind="no_success", account_id=box.id, opened_at=now, message=f"Box {i} is behind."))
    db.session.commit()
    assert queries_for_board() == few <= 4
