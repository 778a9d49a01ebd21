"""One click from the product's top bar into Roundcube, in headless Chromium (Playwright).

Real parts only: the Flask app (werkzeug in a thread), Roundcube (php -S) with our plugin,
the private Dovecot with two mailboxes, and an SMTP server (aiosmtpd) that must receive the
sent message from the right account. Screenshots go to tests/artifacts/.
"""

from __future__ import annotations

import re
import time
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.autologin_stack import PASSWORD, free_port, roundcube_logs, start_stack

pytestmark = [pytest.mark.browser,
              # The test SMTP server allows AUTH without TLS on loopback, as Roundcube's default setup needs.
              pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")]

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"


class RecordingHandler:
    """Keeps every message with the SMTP AUTH user that sent it."""

    def __init__(self):
        self.received = []

    async def handle_DATA(self, server, session, envelope):
        auth = session.auth_data
        self.received.append({
            "auth_user": auth.login.decode() if isinstance(auth, LoginPassword) else None,
            "mail_from": envelope.mail_from, "rcpt_tos": list(envelope.rcpt_tos), "raw": envelope.content})
        return "250 Message accepted"


class Accounts:
    """AUTH PLAIN/LOGIN against the mailbox passwords the test knows."""

    def __init__(self):
        self.passwords: dict[str, str] = {}

    def __call__(self, server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword) and \
                self.passwords.get(auth_data.login.decode()) == auth_data.password.decode():
            return AuthResult(success=True, auth_data=auth_data)
        # handled=False makes aiosmtpd answer 535 instead of leaving the client waiting.
        return AuthResult(success=False, handled=False)


@pytest.fixture(scope="module")
def smtp_server():
    handler, accounts = RecordingHandler(), Accounts()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), authenticator=accounts,
                            auth_require_tls=False, auth_required=True)
    controller.start()
    yield controller, handler, accounts
    controller.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory, dovecot, smtp_server):
    controller, handler, accounts = smtp_server
    stack = start_stack(tmp_path_factory.mktemp("browser"))
    boxes = {}
    for name in ("Sales", "Support"):
        login, password = dovecot.new_user(name.lower())
        accounts.passwords[login] = password
        msg = EmailMessage()
        msg["From"] = "customer@example.test"
        msg["To"] = login
        msg["Subject"] = f"Order question for {name}"
        msg.set_content(f"Hello {name} team.")
        dovecot.append(login, password, "INBOX", bytes(msg))
        account_id = stack.add_mailbox(name, login, password, imap_host=dovecot.host, imap_port=dovecot.port,
                                       smtp_host="127.0.0.1", smtp_port=controller.port)
        boxes[name] = {"id": account_id, "login": login, "password": password}
    alice = stack.add_user("alice")
    stack.add_user("bob")
    for box in boxes.values():
        stack.grant(box["id"], alice)
    yield stack, boxes, handler
    stack.stop()


def product_login(context, stack, username):
    page = context.new_page()
    page.goto(f"{stack.flask_url}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit], input[type=submit]")
    page.wait_for_selector(".topbar .who")
    return page


def open_mailbox_tab(context, page, name):
    """Pick ``name`` from the top bar's drop-down; returns the new Roundcube tab, inbox loaded."""
    if not page.locator(".mailbox-menu").evaluate("menu => menu.open"):
        page.click(".mailbox-menu > summary")
    with context.expect_page() as new_tab:
        page.click(f".mailbox-menu button:has-text('{name}')")
    tab = new_tab.value
    tab.wait_for_load_state()
    tab.wait_for_selector("#messagelist tbody tr", timeout=20000)
    return tab


def test_user_opens_two_mailboxes_and_sends_from_the_right_one(world, browser):
    stack, boxes, handler = world
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(15000)
    try:
        page = product_login(context, stack, "alice")
        # Two granted mailboxes: a drop-down, not a single button.
        assert page.locator(".mailbox-menu").count() == 1
        assert page.locator(".mailbox-button").count() == 0
        page.click(".mailbox-menu > summary")
        page.screenshot(path=str(ARTIFACTS / "autologin-1-topbar-dropdown.png"))

        sales = open_mailbox_tab(context, page, "Sales")
        assert sales.inner_text(".header-title.username") == boxes["Sales"]["login"]
        assert "Order question for Sales" in sales.inner_text("#messagelist")
        assert "_autologin" not in sales.url  # no one-time code in the address bar
        sales.screenshot(path=str(ARTIFACTS / "autologin-2-sales-inbox.png"))

        support = open_mailbox_tab(context, page, "Support")
        assert support.inner_text(".header-title.username") == boxes["Support"]["login"]
        assert "Order question for Support" in support.inner_text("#messagelist")
        assert "Order question for Sales" not in support.inner_text("#messagelist")
        support.screenshot(path=str(ARTIFACTS / "autologin-3-support-inbox.png"))

        # Compose and send from the Support mailbox: its own SMTP server, its own login.
        support.goto(stack.roundcube_url + "?_task=mail&_action=compose")
        support.wait_for_selector("#compose-subject")
        support.fill(".recipient-input input", "customer@example.test")
        support.keyboard.press("Enter")
        subject = f"Reply from support {time.time_ns()}"
        support.fill("#compose-subject", subject)
        support.fill("#composebody", "Your order ships tomorrow.")
        support.screenshot(path=str(ARTIFACTS / "autologin-4-compose.png"))
        support.click("button.send")
        deadline = time.monotonic() + 20
        sent = []
        while time.monotonic() < deadline and not sent:
            sent = [m for m in handler.received if subject.encode() in m["raw"]]
            time.sleep(0.2)
        assert sent, "the SMTP server received nothing\n" + roundcube_logs(stack)
        message = message_from_bytes(sent[0]["raw"], policy=default_policy)
        assert sent[0]["auth_user"] == boxes["Support"]["login"]
        assert boxes["Support"]["login"] in str(message["From"])
        assert sent[0]["rcpt_tos"] == ["customer@example.test"]
        support.screenshot(path=str(ARTIFACTS / "autologin-5-sent.png"))

        # No page of either side ever showed a mailbox password.
        for tab in (page, sales, support):
            html = tab.content()
            assert boxes["Sales"]["password"] not in html and boxes["Support"]["password"] not in html
    finally:
        context.close()


def test_user_without_grant_gets_no_way_in(world, browser):
    stack, boxes, _ = world
    alice = browser.new_context()
    bob = browser.new_context()
    try:
        # Alice gets a real hand-off (the token the page posts to Roundcube) and uses it herself.
        alice_page = product_login(alice, stack, "alice")
        csrf = alice_page.get_attribute("input[name=csrf_token]", "value")
        answer = alice.request.post(f"{stack.flask_url}/bridge/open/{boxes['Sales']['id']}",
                                    form={"csrf_token": csrf}, max_redirects=0)
        assert answer.status == 200
        token = re.search(r'name="_autologin" value="([A-Za-z0-9_-]{43})"', answer.text()).group(1)
        used = open_mailbox_tab(alice, alice_page, "Sales")
        assert used.inner_text(".header-title.username") == boxes["Sales"]["login"]

        page = product_login(bob, stack, "bob")
        assert page.locator(".mailbox-menu, .mailbox-button").count() == 0
        assert page.locator("form[action^='/bridge/open/']").count() == 0
        page.goto(f"{stack.flask_url}/mailbox")
        assert page.locator("form[action^='/bridge/open/']").count() == 0
        page.screenshot(path=str(ARTIFACTS / "autologin-6-no-grant.png"))
        csrf = page.get_attribute("input[name=csrf_token]", "value")
        for box in boxes.values():
            refused = bob.request.post(f"{stack.flask_url}/bridge/open/{box['id']}", form={"csrf_token": csrf},
                                       max_redirects=0)
            assert refused.status == 403

        # Alice's token, handed to Bob (a page of hers that posts it to Roundcube in his browser), gets him
        # nothing: his browser did not click, so the product does not bind it, and Roundcube logs nobody in.
        stolen = bob.new_page()
        stolen.set_content(f'<form method="post" action="{stack.roundcube_url}">'
                           f'<input type="hidden" name="_autologin" value="{token}"></form>')
        with stolen.expect_navigation():
            stolen.evaluate("document.forms[0].submit()")
        stolen.wait_for_load_state()
        assert stolen.url.startswith(f"{stack.flask_url}/bridge/bind")
        assert "another browser" in stolen.content()
        stolen.screenshot(path=str(ARTIFACTS / "autologin-7-foreign-link.png"))
        stolen.goto(stack.roundcube_url)
        assert stolen.locator(".header-title.username").count() == 0
        assert stolen.locator("input[name=_user]").count() == 1
    finally:
        alice.close()
        bob.close()


def test_single_mailbox_shows_one_button(world, browser):
    stack, boxes, _ = world
    carol = stack.add_user("carol")
    stack.grant(boxes["Sales"]["id"], *_granted(stack, boxes["Sales"]["id"]), carol)
    _forget_unread(stack, boxes["Sales"]["id"])  # so the badge can only come from unread.js
    _poll_every(stack, 10)  # the shortest interval unread.js is told to poll at
    context = browser.new_context()
    try:
        page = product_login(context, stack, "carol")
        assert page.locator(".mailbox-button button").inner_text().strip().startswith("✉ Sales")
        assert page.locator(".mailbox-menu").count() == 0
        assert page.locator(".mailbox-button .badge").count() == 0
        # The worker's periodic task asks Dovecot (STATUS UNSEEN); unread.js's next poll of
        # /bridge/unread brings the cached count to the badge.
        _refresh_unread_counts(stack)
        page.wait_for_selector(".mailbox-button .badge", timeout=30000)
        assert page.inner_text(".mailbox-button .badge") == "1"
        with context.expect_page() as new_tab:
            page.click(".mailbox-button button")
        tab = new_tab.value
        tab.wait_for_selector("#messagelist tbody tr", timeout=20000)
        assert tab.inner_text(".header-title.username") == boxes["Sales"]["login"]
        page.screenshot(path=str(ARTIFACTS / "autologin-8-one-button.png"))
    finally:
        context.close()
        _poll_every(stack, 300)


def _forget_unread(stack, account_id):
    from app.extensions import db
    from app.models import MailAccount

    with stack.app.app_context():
        account = db.session.get(MailAccount, account_id)
        account.unread_count = None
        account.unread_checked_at = None
        db.session.commit()


def _poll_every(stack, seconds):
    from app.extensions import db
    from app.models import MailSettings

    with stack.app.app_context():
        MailSettings.get().unread_refresh_seconds = seconds
        db.session.commit()


def _refresh_unread_counts(stack):
    from app.services.autologin import unread

    with stack.app.app_context():
        unread.refresh_stale_counts()


def _granted(stack, account_id):
    from app.services.autologin import grants as mailbox_grants

    with stack.app.app_context():
        return sorted(mailbox_grants.grants_by_account().get(account_id, ()))
