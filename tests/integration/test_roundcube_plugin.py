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


def test_valid_token_logs_in_to_the_mailbox(stack, boxes):
    user_id, made = boxes
    account_id, login, password = made["Sales"]
    token = stack.mint(user_id, account_id)
    session = requests.Session()
    page = session.get(stack.roundcube_url, params={"_autologin": token}, timeout=30)
    assert page.status_code == 200, roundcube_logs(stack)
    assert "_task=mail" in page.url
    assert logged_in_as(page) == login
    assert "Inbox" in page.text
    # The mail list (AJAX, as the page itself loads it) holds the Dovecot message.
    listing = session.get(stack.roundcube_url, params={"_task": "mail", "_action": "list", "_mbox": "INBOX",
                                                        "_remote": "1"},
                          headers={"X-Roundcube-Request": _request_token(page)}, timeout=30)
    assert "Hello Sales inbox" in listing.text
    # The password went server-to-server only: not in any page, URL or Roundcube log.
    assert password not in page.text and password not in page.url
    assert password not in roundcube_logs(stack)


def test_reused_token_lands_on_login_page_with_message(stack, boxes):
    user_id, made = boxes
    token = stack.mint(user_id, made["Sales"][0])
    assert logged_in_as(requests.get(stack.roundcube_url, params={"_autologin": token}, timeout=30))
    again = requests.Session().get(stack.roundcube_url, params={"_autologin": token}, timeout=30)
    assert again.status_code == 401
    assert EXPIRED_OR_USED in again.text
    assert 'name="_user"' in again.text and logged_in_as(again) is None


def test_forged_token_lands_on_login_page(stack, boxes):
    page = requests.get(stack.roundcube_url, params={"_autologin": "A" * 43}, timeout=30)
    assert page.status_code == 401
    assert EXPIRED_OR_USED in page.text and 'name="_user"' in page.text
    with stack.app.app_context():
        assert db.session.scalars(select(AutologinEvent.outcome)).all()[-1] == "refused: unknown"


def test_no_token_leaves_the_normal_login_form(stack):
    for params in ({}, {"_autologin": "not a token!"}):
        page = requests.get(stack.roundcube_url, params=params, timeout=30)
        assert page.status_code == 200
        assert 'name="_user"' in page.text and 'name="_token"' in page.text  # Roundcube's CSRF-protected form
        assert EXPIRED_OR_USED not in page.text


def test_revoked_grant_is_refused(stack, boxes, dovecot):
    _, made = boxes
    other = stack.add_user("bob")
    account_id = made["Support"][0]
    stack.grant(account_id, boxes[0], other)
    token = stack.mint(other, account_id)
    stack.grant(account_id, boxes[0])  # bob's grant removed after the token was minted
    page = requests.get(stack.roundcube_url, params={"_autologin": token}, timeout=30)
    assert page.status_code == 401 and logged_in_as(page) is None
    assert "no longer allowed" in page.text


def test_second_mailbox_switches_the_session(stack, boxes):
    user_id, made = boxes
    session = requests.Session()
    first = session.get(stack.roundcube_url, params={"_autologin": stack.mint(user_id, made["Sales"][0])},
                        timeout=30)
    assert logged_in_as(first) == made["Sales"][1]
    second = session.get(stack.roundcube_url, params={"_autologin": stack.mint(user_id, made["Support"][0])},
                         timeout=30)
    assert logged_in_as(second) == made["Support"][1]
    # A bad link while logged in does not leave the user in the previous mailbox.
    third = session.get(stack.roundcube_url, params={"_autologin": "B" * 43}, timeout=30)
    assert logged_in_as(third) is None and EXPIRED_OR_USED in third.text
    assert logged_in_as(session.get(stack.roundcube_url, params={"_task": "mail"}, timeout=30)) is None


def test_wrong_shared_secret_is_refused_by_flask(stack, boxes):
    user_id, made = boxes
    token = stack.mint(user_id, made["Sales"][0])
    answer = requests.post(f"{stack.flask_url}/bridge/redeem", json={"token": token},
                           headers={"X-Bridge-Secret": "guess"}, timeout=10)
    assert answer.status_code == 401 and made["Sales"][2] not in answer.text
    # The refused call did not spend the token: Roundcube with the right secret still can.
    page = requests.get(stack.roundcube_url, params={"_autologin": token}, timeout=30)
    assert logged_in_as(page) == made["Sales"][1]


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

    user_id, made = boxes
    token = stack.mint(user_id, made["Sales"][0])
    secret = stack.app.config["BRIDGE_SECRET"]

    def redeem(_):
        return requests.post(f"{stack.flask_url}/bridge/redeem", json={"token": token},
                             headers={"X-Bridge-Secret": secret}, timeout=30).status_code

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
