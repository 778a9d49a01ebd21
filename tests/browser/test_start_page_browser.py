"""The start page and the admin pages in headless Chromium: what a user and an administrator see, and the layout.

Real parts only: the Flask app (werkzeug in a thread) on a file SQLite database, and Chromium.
The data is seeded the way the product stores it, with the long values real mail brings (an
unbroken address, a server reply, a long link). Screenshots go to tests/artifacts/.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from app import create_app
from app.extensions import db
from app.models import (
    Alert,
    Email,
    EmailLink,
    EmailMailbox,
    MailAccount,
    MailServer,
    ScanFolder,
    ScannerActivity,
    ScanRun,
    Ticket,
    User,
)
from app.models.base import utcnow
from app.models.runs import hour_number
from app.navigation import MENUS
from tests import factories
from tests.autologin_stack import free_port

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
LONG_LOGIN = "customer-service-and-complaints-department@subsidiary-of-the-corporate-group.example.test"
LONG_ERROR = ("The server refused the login for " + LONG_LOGIN + ": [AUTHENTICATIONFAILED] Authentication failed. "
              "Check the login and the password. Nothing was read from the mailbox this time.")
LONG_LINK = "https://tracking.example.test/" + "a1b2c3d4e5" * 12


def _seed(app) -> dict:
    """Users, mailboxes, scanners in every state, a ticket, mail, runs and alerts; returns the ids the tests use."""
    now = utcnow()
    with app.app_context():
        factories.user("admin", admin=True, email="admin@corp.test")
        alice = factories.user("alice", email="alice@corp.test")
        server = MailServer(name="Corporate mail server with a long name", imap_host="127.0.0.1", imap_port=1,
                            imap_security="none", smtp_host="127.0.0.1", smtp_port=1, smtp_security="none")
        sales = MailAccount(name="Sales", server=server, login="sales@corp.test", unread_count=5,
                            last_success_at=now - timedelta(minutes=3), last_run_at=now, last_run_status="done")
        support = MailAccount(name="Support", server=server, login=LONG_LOGIN, unread_count=0,
                              last_run_at=now, last_run_status="failed", last_error=LONG_ERROR,
                              last_success_at=now - timedelta(minutes=20))
        blocked = MailAccount(name="Complaints", server=server, login="complaints@corp.test", health="blocked",
                              blocked_reason="Blocked after 3 failed logins: " + LONG_ERROR)
        quiet = MailAccount(name="Archive", server=server, login="archive@corp.test", enabled=False)
        behind = MailAccount(name="Invoices", server=server, login="invoices@corp.test", last_run_status="done",
                             last_success_at=now - timedelta(hours=6), created_at=now - timedelta(days=9))
        db.session.add_all([server, sales, support, blocked, quiet, behind])
        db.session.flush()
        factories.grant(alice, sales)
        factories.grant(alice, support)
        ticket = Ticket(subject="Order 1234 arrived broken " + LONG_LINK, status="open", assignee_id=alice.id,
                        account_id=sales.id)
        db.session.add(ticket)
        db.session.flush()
        ticket.number = f"TT-{ticket.id:06d}"
        mail = Email(account_id=sales.id, folder="INBOX", uidvalidity=1, uid=1, message_key="<m1@client.test>",
                     message_id="m1@client.test", subject="Re: Order 1234 " + LONG_LINK, from_addr=LONG_LOGIN,
                     from_name="", to_addrs="sales@corp.test", date=now - timedelta(minutes=5),
                     direction="received", body_text="It arrived broken.", raw=b"x", size=1)
        mail.mailboxes.append(EmailMailbox(account_id=sales.id, message_key=mail.message_key, folder="INBOX",
                                           uidvalidity=1, uid=1))
        db.session.add(mail)
        db.session.flush()
        db.session.add(EmailLink(email_id=mail.id, record_type="ticket", record_id=ticket.id))
        for hours_ago, n in ((0, 4), (1, 9), (5, 2), (20, 6)):
            db.session.add(ScannerActivity(account_id=sales.id, hour=hour_number(now) - hours_ago, messages=n))
        db.session.add(ScanRun(account_id=support.id, started_at=now - timedelta(minutes=2), finished_at=now,
                               status="failed", message=LONG_ERROR, trigger="schedule"))
        db.session.add(Alert(kind="no_success", account_id=behind.id, opened_at=now,
                             message="Scanner 'Invoices' has had no successful run for six hours."))
        db.session.commit()
        return {"alice": alice.id, "sales": sales.id, "support": support.id, "blocked": blocked.id,
                "quiet": quiet.id, "behind": behind.id, "ticket": ticket.id, "mail": mail.id}


@pytest.fixture
def site(tmp_path):
    app = create_app("development", SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'start.db'}",
                     QUEUE_MODE="inline", INSTANCE_PATH=str(tmp_path / "instance"), SECRET_KEY="start-page-test",
                     MAIL_ENCRYPTION_KEY="dGhpcy1pcy1hLWJlbmNoLWtleS0zMi1ieXRlcy0hISE=", WTF_CSRF_ENABLED=True)
    with app.app_context():
        db.create_all()
    ids = _seed(app)
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, name="flask-under-test", daemon=True).start()
    yield app, f"http://127.0.0.1:{port}", ids
    server.shutdown()
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def _logged_in(browser, base: str, username: str):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{base}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", factories.PASSWORD)
    page.click("button[type=submit], input[type=submit]")
    page.wait_for_url(f"{base}/")
    return page


def test_a_user_sees_their_mailboxes_tickets_and_mail(site, browser):
    _app, base, ids = site
    page = _logged_in(browser, base, "alice")
    page.screenshot(path=str(ARTIFACTS / "start-page-user.png"), full_page=True)

    mailboxes = page.locator(".start-mailboxes")
    assert mailboxes.locator(f"[data-mailbox-unread='{ids['sales']}']").inner_text() == "5"
    assert mailboxes.locator(f"[data-mailbox-unread='{ids['support']}']").inner_text() == "0"
    open_button = mailboxes.locator(f"button[data-open-mailbox='{ids['sales']}']")
    assert open_button.is_visible() and open_button.inner_text() == "Open"
    # One click opens the hand-off in a new tab: a POST with the page's CSRF token.
    form = open_button.locator("xpath=ancestor::form")
    assert form.get_attribute("target") == "_blank" and form.get_attribute("method") == "post"
    assert form.get_attribute("action") == f"/bridge/open/{ids['sales']}"

    tickets = page.locator(".start-tickets")
    assert "(1 open)" in tickets.inner_text() and "Order 1234 arrived broken" in tickets.inner_text()
    mail = page.locator(".start-mail")
    assert "Re: Order 1234" in mail.inner_text() and "Sales" in mail.inner_text()
    assert page.locator(".scanner-board").count() == 0  # the board is for administrators

    mail.locator(f"[data-start-email='{ids['mail']}'] a").click()
    page.wait_for_url(f"{base}/records/emails/{ids['mail']}")
    assert "It arrived broken." in page.content()


def test_an_administrator_sees_the_board_and_reaches_a_scanner_or_its_history_in_one_click(site, browser):
    _app, base, ids = site
    page = _logged_in(browser, base, "admin")
    page.screenshot(path=str(ARTIFACTS / "start-page-admin.png"), full_page=True)

    board = page.locator(".scanner-board")
    states = {int(row.get_attribute("data-board-scanner")): row.get_attribute("data-state")
              for row in board.locator("tr[data-board-scanner]").all()}
    assert states == {ids["sales"]: "healthy", ids["support"]: "failing", ids["blocked"]: "blocked",
                      ids["quiet"]: "disabled", ids["behind"]: "behind"}
    order = [row.get_attribute("data-state") for row in board.locator("tr[data-board-scanner]").all()]
    assert order == ["blocked", "failing", "behind", "healthy", "disabled"]  # what needs a person first
    sales = board.locator(f"tr[data-board-scanner='{ids['sales']}']")
    assert sales.locator(f"[data-messages='{ids['sales']}']").inner_text() == "21"
    assert sales.locator("svg.spark polyline").count() == 1
    assert sales.locator("svg.spark").bounding_box()["width"] > 50  # drawn, not collapsed
    assert "no successful run for six hours" in board.locator(f"tr[data-board-scanner='{ids['behind']}']").inner_text()
    assert "UTC" in sales.inner_text()

    board.locator(f"tr[data-board-scanner='{ids['support']}'] td:first-child a").click()
    page.wait_for_url(f"{base}/admin/scanners/{ids['support']}/edit")
    page.go_back()
    page.locator(f".scanner-board tr[data-board-scanner='{ids['support']}'] a", has_text="History").click()
    page.wait_for_url(f"{base}/admin/history?mailbox={ids['support']}")
    assert "Authentication failed." in page.locator("table.history").inner_text()


# Whether any table sticks out of its container or the page, and whether a long error's ordinary words fit
# their cell (so none is broken in the middle): measured by the browser itself.
_LAYOUT = """() => {
  const out = {page: document.documentElement.scrollWidth, tables: [], words: []};
  for (const table of document.querySelectorAll('main table')) {
    const box = table.getBoundingClientRect(), parent = table.parentElement.getBoundingClientRect();
    out.tables.push({cls: table.className, right: Math.round(box.right), limit: Math.round(parent.right),
                     width: Math.round(box.width)});
  }
  const canvas = document.createElement('canvas').getContext('2d');
  for (const el of document.querySelectorAll('td .error-text, td.error-text')) {
    const style = getComputedStyle(el.querySelector('small') || el);  // the font the words are drawn in
    canvas.font = style.font;
    const words = el.innerText.split(/\\s+/).filter(w => w.length < 30);
    const widest = Math.max(...words.map(w => canvas.measureText(w).width));
    out.words.push({widest: Math.round(widest), room: el.clientWidth, text: el.innerText.slice(0, 40)});
  }
  return out;
}"""


def test_no_table_is_wider_than_its_page_at_1280_px_and_words_stay_whole(site, browser):
    app, base, _ids = site
    page = _logged_in(browser, base, "admin")
    with app.test_request_context():
        from flask import url_for

        paths = ["/"] + [url_for(endpoint) for _menu, _label, endpoint, _admin in MENUS
                         if endpoint in app.view_functions]
    assert "/admin/scanners" in paths and "/admin/history" in paths and "/records/emails" in paths
    problems = []
    for path in paths:
        page.goto(base + path)
        layout = page.evaluate(_LAYOUT)
        if layout["page"] > 1280:
            problems.append(f"{path}: the page is {layout['page']} px wide")
        problems += [f"{path}: table.{t['cls']} ends at {t['right']} px, its container at {t['limit']} px"
                     for t in layout["tables"] if t["right"] > t["limit"] + 1]
        problems += [f"{path}: a {w['widest']} px word in a {w['room']} px cell ({w['text']}…)"
                     for w in layout["words"] if w["widest"] > w["room"]]
        if path == "/admin/scanners":
            page.screenshot(path=str(ARTIFACTS / "scanners-1280.png"), full_page=True)
            assert layout["words"], "the failing scanner's error is on the page"
    assert not problems, "\n".join(problems)
    with app.app_context():
        assert db.session.query(User).count() == 2


# Every ordinary word in a table cell (a date, a time, "UTC", a name, a header; not an address, a link or a
# server token over 20 letters, which may break where they must) stays on one line, and no cell's content
# spills into its neighbour: measured by the browser with a Range around each word (a word broken over two
# lines has two boxes).
_BROKEN_WORDS = """() => {
  const out = [];
  for (const cell of document.querySelectorAll('main table th, main table td')) {
    if (cell.scrollWidth > cell.clientWidth + 1)
      out.push(`spills out of its ${cell.clientWidth} px cell: ${cell.innerText.slice(0, 40)}`);
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (const m of node.data.matchAll(/\\S+/g)) {
        if (m[0].length > 20 || /[@\\/\u00ad]/.test(m[0])) continue;  // a soft hyphen is a chosen break
        const range = document.createRange();
        range.setStart(node, m.index);
        range.setEnd(node, m.index + m[0].length);
        const lines = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
        if (lines.size > 1) out.push(`"${m[0]}" is broken over ${lines.size} lines`);
      }
    }
  }
  return out;
}"""


def test_table_cells_keep_dates_names_and_headers_whole_at_1280_px(site, browser):
    app, base, ids = site
    with app.app_context():  # the demo's values: a two-word name, a scanner with an incoming and an outgoing folder
        admin = db.session.query(User).filter_by(username="admin").one()
        admin.full_name = "Demo Administrator"
        sales = db.session.get(MailAccount, ids["sales"])
        sales.assignee_id = admin.id
        db.session.add_all([ScanFolder(account_id=sales.id, name="INBOX", direction="incoming"),
                            ScanFolder(account_id=sales.id, name="Sent", direction="outgoing")])
        db.session.get(Ticket, ids["ticket"]).assignee_id = admin.id
        db.session.commit()
    page = _logged_in(browser, base, "admin")
    paths = ["/", "/admin/scanners", "/admin/history", "/records/emails", "/records/tickets", "/admin/users",
             f"/records/tickets/{ids['ticket']}"]
    problems = []
    for path in paths:
        page.goto(base + path)
        problems += [f"{path}: {p}" for p in page.evaluate(_BROKEN_WORDS)]
    assert not problems, "\n".join(problems)


# The hint in a search field (what one can search for) is read whole, not cut off at the field's edge.
_CUT_PLACEHOLDERS = """() => {
  const canvas = document.createElement('canvas').getContext('2d');
  return [...document.querySelectorAll('main input[placeholder]')].filter(input => {
    const style = getComputedStyle(input);
    canvas.font = style.font;
    const room = input.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    return canvas.measureText(input.placeholder).width > room;
  }).map(input => input.placeholder);
}"""


def test_search_fields_show_their_whole_hint(site, browser):
    _app, base, _ids = site
    page = _logged_in(browser, base, "admin")
    problems = []
    for path in ("/records/tickets", "/records/emails", "/records/contacts", "/records/organizations",
                 "/records/leads", "/records/users"):
        page.goto(base + path)
        problems += [f"{path}: the hint '{hint}' is cut off" for hint in page.evaluate(_CUT_PLACEHOLDERS)]
    assert not problems, "\n".join(problems)
