"""The hand-off is bound to the browser that clicked: bind step, redeem with the browser key, spent on failure.

These reproduce the attacks on the autologin: a token minted for alice opened
in bob's browser (login CSRF), a redeem without the binding, a forged
confirmation, a token retried after a failed step, tokens minted in bulk, and
the event table filled by calls without the shared secret.
"""

from __future__ import annotations

import re
import secrets

import pytest
from sqlalchemy import func, select

from app.crypto import encrypt_secret
from app.extensions import db
from app.models import AutologinEvent, AutologinToken, MailAccount, MailServer
from app.services.autologin import grants as mailbox_grants
from app.services.autologin import handoff as mailbox_handoff
from roundcube_bridge import tokens
from tests import factories
from tests.clients import Browser

SECRET_HEADERS = {tokens.SECRET_HEADER: "test-bridge-secret"}
PASSWORD = "mailbox-pw-5521"


@pytest.fixture
def box(app):
    server = MailServer(name="Corp", imap_host="imap.corp.test", imap_port=993, imap_security="ssl",
                        smtp_host="smtp.corp.test", smtp_port=465, smtp_security="ssl", smtp_auth=True)
    account = MailAccount(name="Sales", server=server, login="sales@corp.test",
                          password_enc=encrypt_secret(app.config["MAIL_ENCRYPTION_KEY"], PASSWORD))
    db.session.add_all([server, account])
    db.session.commit()
    return account


@pytest.fixture
def people(app, box):
    alice, bob = factories.user("alice"), factories.user("bob")
    mailbox_grants.set_grants(box.id, [alice.id, bob.id])
    return alice, bob


def _login(app, username):
    browser = Browser(app)
    assert browser.login(username).status_code == 302
    return browser


def _click(client, account_id):
    page = client.get("/")
    return client.post(f"/bridge/open/{account_id}", data={"csrf_token": factories.csrf_from(page)})


def _redeem(client, token, key, confirmation):
    return client.post("/bridge/redeem", headers=SECRET_HEADERS,
                       json={"token": token, "browser": key, "confirmation": confirmation, "client": "192.0.2.9"})


def _spent(token) -> bool:
    row = db.session.scalar(select(AutologinToken).where(AutologinToken.token_hash == tokens.hash_token(token)))
    db.session.refresh(row)
    return row.used_at is not None


def test_the_whole_hand_off_over_http(app, people, box):
    alice = _login(app, "alice")
    token = factories.handoff_token(_click(alice, box.id))
    key = secrets.token_hex(32)
    bound = alice.get(f"/bridge/bind?browser={tokens.hash_browser(key)}")
    assert bound.status_code == 303
    location = bound.headers["Location"]
    assert location.startswith(app.config["ROUNDCUBE_URL"]) and token not in location
    confirmation = re.search(r"[?&]_autologin_bound=([0-9a-f]{64})$", location).group(1)
    assert confirmation == tokens.confirmation("test-bridge-secret", tokens.hash_token(token), tokens.hash_browser(key))
    # The product's copy of the token is gone from the browser once used.
    assert any(h.startswith("cm_autologin=;") for h in bound.headers.getlist("Set-Cookie"))
    answer = _redeem(alice, token, key, confirmation)
    assert answer.status_code == 200 and answer.get_json()["password"] == PASSWORD


def test_a_token_minted_for_alice_opened_in_bobs_browser_logs_nobody_in(app, people, box):
    """Login CSRF: alice hands her own link to bob; his browser must not end up in her mailbox."""
    alice = _login(app, "alice")
    token = factories.handoff_token(_click(alice, box.id))
    bob = _login(app, "bob")
    key = secrets.token_hex(32)
    # Bob's browser has no copy of alice's token: refused, and nothing is written for it.
    before = db.session.scalar(select(func.count(AutologinEvent.id)))
    answer = bob.get(f"/bridge/bind?browser={tokens.hash_browser(key)}")
    assert answer.status_code == 404 and "another browser" in answer.get_data(as_text=True)
    assert db.session.scalar(select(func.count(AutologinEvent.id))) == before
    # Even holding her cookie, bob is not the user it was minted for: refused, and the token is spent.
    bob.set_cookie("cm_autologin", token, path="/bridge/bind")
    answer = bob.get(f"/bridge/bind?browser={tokens.hash_browser(key)}")
    assert answer.status_code == 404 and "Location" not in answer.headers
    assert _spent(token)
    # A confirmation cannot be made up, so the plugin never redeems it; asked anyway, the product refuses.
    forged = tokens.confirmation("guess", tokens.hash_token(token), tokens.hash_browser(key))
    refused = _redeem(bob, token, key, forged)
    assert refused.status_code == 410 and PASSWORD not in refused.get_data(as_text=True)


@pytest.mark.parametrize("how", ["not bound", "other browser key", "forged confirmation", "no confirmation"])
def test_a_redeem_without_this_browsers_binding_is_refused_and_spends_the_token(app, people, box, how):
    alice = _login(app, "alice")
    token = factories.handoff_token(_click(alice, box.id))
    key = secrets.token_hex(32)
    if how == "not bound":
        confirmation = tokens.confirmation("test-bridge-secret", tokens.hash_token(token), tokens.hash_browser(key))
    else:
        key, confirmation = factories.bind_token(token)
        if how == "other browser key":
            key = secrets.token_hex(32)
        elif how == "forged confirmation":
            confirmation = secrets.token_hex(32)
        else:
            confirmation = None
    answer = _redeem(alice, token, key, confirmation)
    assert answer.status_code == 404 and answer.get_json()["reason"] == "wrong_browser"
    assert PASSWORD not in answer.get_data(as_text=True)
    assert _spent(token)
    assert db.session.scalars(select(AutologinEvent.outcome).order_by(AutologinEvent.id.desc())).first() == \
        "refused: wrong_browser"


def test_a_token_is_bound_once(app, people, box):
    token = mailbox_handoff.open_mailbox(people[0], box.id, None)
    factories.bind_token(token)
    with pytest.raises(mailbox_handoff.AutologinRefused) as refused:
        factories.bind_token(token)
    assert refused.value.reason == "used"
    assert _spent(token)


def test_a_mailbox_disabled_between_mint_and_redeem_is_refused(app, people, box):
    token = mailbox_handoff.open_mailbox(people[0], box.id, None)
    key, confirmation = factories.bind_token(token)
    box.enabled = False
    db.session.commit()
    with pytest.raises(mailbox_handoff.AutologinRefused) as refused:
        mailbox_handoff.redeem(token, None, browser_key=key, confirmation=confirmation)
    assert (refused.value.reason, refused.value.status) == ("disabled", 403)
    assert _spent(token)
    # Enabled again, the spent link still opens nothing.
    box.enabled = True
    db.session.commit()
    with pytest.raises(mailbox_handoff.AutologinRefused) as again:
        mailbox_handoff.redeem(token, None, browser_key=key, confirmation=confirmation)
    assert again.value.reason == "used"


def test_minting_is_rate_limited_per_user(app, people, box):
    app.config.update(AUTOLOGIN_MINT_LIMIT=3, AUTOLOGIN_MINT_WINDOW=60)
    alice = _login(app, "alice")
    assert [_click(alice, box.id).status_code for _ in range(3)] == [200, 200, 200]
    refused = _click(alice, box.id)
    assert refused.status_code == 429 and "Wait a minute" in refused.get_data(as_text=True)
    assert db.session.scalar(select(func.count(AutologinToken.id))) == 3
    # Another user is not held back by alice's clicks.
    assert _click(_login(app, "bob"), box.id).status_code == 200


def test_calls_without_the_secret_do_not_fill_the_event_table(app, client):
    for _ in range(50):
        answer = client.post("/bridge/redeem", json={"token": "A" * 43}, headers={tokens.SECRET_HEADER: "guess"})
        assert answer.status_code == 401
    # At most one row per address and minute, however many calls came.
    rows = db.session.scalars(select(AutologinEvent.outcome)).all()
    assert rows == ["refused: bad secret"]
