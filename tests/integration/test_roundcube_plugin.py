"""The Roundcube plugin against the real Flask app, the real Roundcube and the real Dovecot."""

from __future__ import annotations

import re
from email.message import EmailMessage

import pytest
import requests
from sqlalchemy import select

from app.extensions import db
from app.models import AutologinEvent
from tests.autologin_stack import PASSWORD, roundcube_logs, start_stack

pytestmark = pytest.mark.integration

EXPIRED_OR_USED = "This mailbox link has expired or was already used"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    stack = start_stack(tmp_path_factory.mktemp("autologin"))
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def boxes(stack, dovecot):
    """Two Dovecot mailboxes with one message each, granted to one user."""
    made = {}
    for name in ("Sales", "Support"):
        login, password = dovecot.new_user(name.lower())
        msg = EmailMessage()
        msg["From"] = "customer@example.test"
        msg["To"] = login
        msg["Subject"] = f"Hello {name} inbox"
        msg.set_content("A message for the integration test.")
        dovecot.append(login, password, "INBOX", bytes(msg))
        account_id = stack.add_mailbox(name, login, password, imap_host=dovecot.host, imap_port=dovecot.port)
        made[name] = (account_id, login, password)
    user_id = stack.add_user("alice")
    for account_id, _, _ in made.values():
        stack.grant(account_id, user_id)
    return user_id, made


def logged_in_as(response) -> str | None:
    """The mailbox Roundcube shows as logged in (elastic's header), or None on the login page."""
    match = re.search(r'header-title username">([^<]+)<', response.text)
    return match.group(1) if match else None


def events(stack) -> list[str]:
    with stack.app.app_context():
        return db.session.scalars(select(AutologinEvent.outcome).order_by(AutologinEvent.id)).all()


def in_roundcube(stack, session) -> str | None:
    return logged_in_as(session.get(stack.roundcube_url, params={"_task": "mail"}, timeout=30))


def test_hand_off_logs_in_to_the_mailbox_and_no_url_or_log_holds_the_token(stack, boxes):
    _, made = boxes
    account_id, login, password = made["Sales"]
    alice = stack.browser("alice")
    url, token = stack.click(alice, account_id)
    page = alice.post(url, data={"_autologin": token}, timeout=60)
    assert page.status_code == 200, roundcube_logs(stack)
    assert "_task=mail" in page.url
    assert logged_in_as(page) == login
    assert "Inbox" in page.text
    # The mail list (AJAX, as the page itself loads it) holds the Dovecot message.
    listing = alice.get(stack.roundcube_url, params={"_task": "mail", "_action": "list", "_mbox": "INBOX",
                                                      "_remote": "1"},
                        headers={"X-Roundcube-Request": _request_token(page)}, timeout=30)
    assert "Hello Sales inbox" in listing.text
    # The token went in a POST body only: no URL of the whole hand-off and no Roundcube log line holds it.
    assert all(token not in r.url and token not in r.headers.get("Location", "") for r in [*page.history, page])
    assert token not in roundcube_logs(stack)
    # The password went server-to-server only: not in any page, URL or Roundcube log.
    assert password not in page.text and password not in page.url
    assert password not in roundcube_logs(stack)
    assert events(stack)[-2:] == ["issued", "redeemed"]


def test_garbage_links_never_reach_the_product_nor_end_the_session(stack, boxes):
    """20 garbage links or <img> requests once throttled the victim and logged her out of Roundcube."""
    _, made = boxes
    alice = stack.browser("alice")
    assert logged_in_as(stack.open_mailbox(alice, made["Sales"][0])) == made["Sales"][1]
    before = events(stack)
    for n in range(25):
        # What a foreign page can make her browser send: old-style links, forged confirmations.
        alice.get(stack.roundcube_url, params={"_autologin": f"{n:02d}" + "A" * 41}, timeout=30)
        alice.get(stack.roundcube_url, params={"_autologin_bound": f"{n:064x}"}, timeout=30)
    assert events(stack) == before  # the product was not even asked
    assert in_roundcube(stack, alice) == made["Sales"][1]  # her session is as it was
    # And her next real hand-off is not held back.
    assert logged_in_as(stack.open_mailbox(alice, made["Support"][0])) == made["Support"][1]


def test_a_link_opened_in_another_browser_logs_nobody_in(stack, boxes):
    """Login CSRF: alice's own hand-off, sent to bob (logged in or not), opens nothing in his browser."""
    _, made = boxes
    alice = stack.browser("alice")
    url, token = stack.click(alice, made["Sales"][0])
    stack.add_user("bob-csrf")
    for bob in (stack.browser("bob-csrf"), requests.Session()):
        before = events(stack)
        answer = bob.post(url, data={"_autologin": token}, timeout=60)
        assert in_roundcube(stack, bob) is None, answer.url
        assert "redeemed" not in events(stack)[len(before):]
    # The link still works in the browser that clicked.
    assert logged_in_as(alice.post(url, data={"_autologin": token}, timeout=60)) == made["Sales"][1]


def test_a_hand_off_page_replayed_opens_nothing_more(stack, boxes):
    _, made = boxes
    alice = stack.browser("alice")
    url, token = stack.click(alice, made["Sales"][0])
    assert logged_in_as(alice.post(url, data={"_autologin": token}, timeout=60)) == made["Sales"][1]
    again = alice.post(url, data={"_autologin": token}, timeout=60)
    assert again.status_code == 404 and "another browser" in again.text  # the product's copy is gone
    assert in_roundcube(stack, alice) == made["Sales"][1]  # the session is untouched


def test_no_hand_off_leaves_the_normal_login_form(stack):
    for params in ({}, {"_autologin": "not a token!"}, {"_autologin": "A" * 43}):
        page = requests.get(stack.roundcube_url, params=params, timeout=30)
        assert page.status_code == 200
        assert 'name="_user"' in page.text and 'name="_token"' in page.text  # Roundcube's CSRF-protected form
        assert EXPIRED_OR_USED not in page.text


def test_revoked_grant_is_refused(stack, boxes):
    user_id, made = boxes
    other = stack.add_user("bob")
    account_id = made["Support"][0]
    stack.grant(account_id, user_id, other)
    bob = stack.browser("bob")
    url, token = stack.click(bob, account_id)
    stack.grant(account_id, user_id)  # bob's grant removed after the click
    page = bob.post(url, data={"_autologin": token}, timeout=60)
    assert page.status_code == 401 and logged_in_as(page) is None
    assert "no longer allowed" in page.text


def test_second_mailbox_switches_the_session(stack, boxes):
    _, made = boxes
    alice = stack.browser("alice")
    assert logged_in_as(stack.open_mailbox(alice, made["Sales"][0])) == made["Sales"][1]
    assert logged_in_as(stack.open_mailbox(alice, made["Support"][0])) == made["Support"][1]
    assert in_roundcube(stack, alice) == made["Support"][1]


def test_wrong_shared_secret_is_refused_by_flask(stack, boxes):
    _, made = boxes
    alice = stack.browser("alice")
    url, token = stack.click(alice, made["Sales"][0])
    answer = requests.post(f"{stack.flask_url}/bridge/redeem", json={"token": token},
                           headers={"X-Bridge-Secret": "guess"}, timeout=10)
    assert answer.status_code == 401 and made["Sales"][2] not in answer.text
    # The refused call did not spend the token: the hand-off with the right secret still works.
    assert logged_in_as(alice.post(url, data={"_autologin": token}, timeout=60)) == made["Sales"][1]


HOSTILE_ANSWERS = {
    "a host Roundcube would expand": {"imap_host": "%h"},
    "a scheme in the host": {"imap_host": "ssl://evil.example"},
    "a path in the SMTP host": {"smtp_host": "smtp.example/x"},
    "a port out of range": {"imap_port": 70000},
    "a port as text": {"smtp_port": "25"},
    "an unknown security": {"imap_security": "tls"},
    "no password": {"password": ""},
}


@pytest.mark.parametrize("change", HOSTILE_ANSWERS.values(), ids=HOSTILE_ANSWERS.keys())
def test_the_plugin_refuses_a_hostile_redeem_answer(stack, boxes, monkeypatch, change):
    """The plugin's own checks, should the product (or something in its place) answer with a bad mailbox."""
    from app.services.autologin import handoff as mailbox_handoff

    real = mailbox_handoff.Handoff.as_json
    monkeypatch.setattr(mailbox_handoff.Handoff, "as_json", lambda self: {**real(self), **change})
    _, made = boxes
    alice = stack.browser("alice")
    page = stack.open_mailbox(alice, made["Sales"][0])
    assert logged_in_as(page) is None and page.status_code == 401
    assert "could not check this mailbox link" in page.text
    assert "unusable redeem answer" in roundcube_logs(stack)
    assert made["Sales"][2] not in roundcube_logs(stack)


def test_unread_count_comes_from_imap_status(stack, dovecot):
    from app.models import MailAccount
    from app.services.autologin import unread

    login, password = dovecot.new_user("unread")
    for n, flags in ((1, ""), (2, ""), (3, "\\Seen")):
        msg = EmailMessage()
        msg["Subject"] = f"Message {n}"
        msg.set_content("x")
        dovecot.append(login, password, "INBOX", bytes(msg), flags=flags)
    account_id = stack.add_mailbox("Unread", login, password, imap_host=dovecot.host, imap_port=dovecot.port)
    user_id = stack.add_user("unread-reader")
    stack.grant(account_id, user_id)
    # The worker's periodic task asks Dovecot; the poll endpoint and the page only read the cache.
    with stack.app.app_context():
        assert account_id in unread.refresh_stale_counts()
        account = db.session.get(MailAccount, account_id)
        assert account.unread_count == 2 and account.unread_checked_at is not None
    session = requests.Session()
    login_page = session.get(f"{stack.flask_url}/login", timeout=10)
    csrf = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', login_page.text).group(1)
    session.post(f"{stack.flask_url}/login", data={"username": "unread-reader", "password": PASSWORD,
                                                   "csrf_token": csrf}, timeout=10)
    body = session.get(f"{stack.flask_url}/bridge/unread", timeout=10).json()
    assert body["mailboxes"] == [{"id": account_id, "name": "Unread", "unread": 2}]
    assert '<span class="badge">2</span>' in session.get(f"{stack.flask_url}/", timeout=10).text
    # A wrong stored password keeps the old count: the next refresh fails, the poll still answers it.
    with stack.app.app_context():
        from app.crypto import encrypt_secret
        account = db.session.get(MailAccount, account_id)
        account.password_enc = encrypt_secret(stack.app.config["MAIL_ENCRYPTION_KEY"], "wrong")
        account.unread_checked_at = None  # stale again
        db.session.commit()
        assert account_id in unread.refresh_stale_counts()
        assert db.session.get(MailAccount, account_id).unread_count == 2
    body = session.get(f"{stack.flask_url}/bridge/unread", timeout=10).json()
    assert body["mailboxes"] == [{"id": account_id, "name": "Unread", "unread": 2}]


def test_concurrent_redeems_of_one_token_succeed_once(stack, boxes):
    from concurrent.futures import ThreadPoolExecutor

    from tests import factories

    user_id, made = boxes
    token = stack.mint(user_id, made["Sales"][0])
    with stack.app.app_context():
        key, confirmation = factories.bind_token(token)
    secret = stack.app.config["BRIDGE_SECRET"]

    def redeem(_):
        return requests.post(f"{stack.flask_url}/bridge/redeem", headers={"X-Bridge-Secret": secret}, timeout=30,
                             json={"token": token, "browser": key, "confirmation": confirmation}).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = sorted(pool.map(redeem, range(8)))
    assert codes == [200] + [410] * 7


def test_roundcube_setup_is_idempotent_and_private(tmp_path):
    import os
    import subprocess
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "scripts" / "roundcube.sh"
    env = dict(os.environ, RC_STATE_DIR=str(tmp_path / "rc"), RC_SKIP_INSTALL="1")

    def setup():
        result = subprocess.run(["bash", str(script), "setup"], env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return result.stdout

    first = setup()
    des_key = (tmp_path / "rc" / "des_key").read_text()
    db_inode = (tmp_path / "rc" / "db" / "roundcube.sqlite").stat().st_ino
    second = setup()
    assert "database created" in first and "database created" not in second
    assert (tmp_path / "rc" / "des_key").read_text() == des_key and len(des_key) == 24
    assert (tmp_path / "rc" / "db" / "roundcube.sqlite").stat().st_ino == db_inode
    config = (tmp_path / "rc" / "config" / "config.inc.php").read_text()
    assert "$config['plugins'] = ['corporate_autologin'];" in config and des_key in config
    assert (tmp_path / "rc" / "plugins" / "corporate_autologin").resolve() == \
        script.parents[1] / "roundcube_bridge" / "plugin" / "corporate_autologin"
    assert (tmp_path / "rc" / "config").stat().st_mode & 0o077 == 0


def _request_token(page) -> str:
    match = re.search(r'"request_token":"([^"]+)"', page.text)
    assert match, "no request token on the Roundcube page"
    return match.group(1)
