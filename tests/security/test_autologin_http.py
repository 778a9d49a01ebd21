"""Autologin tokens over HTTP: what tests/unit/test_autologin.py does not already cover.

A guessing run against /bridge/redeem hits the throttle; guesses without the
shared secret are refused before any token is looked at; a token travels only
in the JSON body, never accepted from the query string; the hand-off page puts
it in a form, never in a URL. What a foreign page can make a victim's browser
send (the bind step with garbage, again and again) is refused without a row and
never counts against anybody.
"""

from __future__ import annotations

import re
import secrets

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import AutologinEvent, AutologinToken
from roundcube_bridge import tokens
from tests import factories
from tests.security import world

SECRET = {tokens.SECRET_HEADER: "test-bridge-secret"}
GUESSER = "198.51.100.66"


@pytest.fixture
def w(app):
    built = world.build()
    # The granted mailbox needs a password for a hand-off to succeed.
    from app.crypto import encrypt_secret

    built.granted.password_enc = encrypt_secret(app.config["MAIL_ENCRYPTION_KEY"], "granted-pw-1")
    db.session.commit()
    return built


def _mint(client, account_id: int) -> str:
    page = client.get("/")
    answer = client.post(f"/bridge/open/{account_id}", data={"csrf_token": factories.csrf_from(page)})
    return factories.handoff_token(answer)


_bound: dict[str, tuple[str, str]] = {}


def _redeem(client, token: str, address: str = GUESSER, headers=SECRET):
    """The plugin's call: for a real token, with the browser key and confirmation of its bind step."""
    body = {"token": token, "client": address}
    if db.session.scalar(select(AutologinToken.id).where(AutologinToken.token_hash == tokens.hash_token(token))):
        if token not in _bound:
            _bound[token] = factories.bind_token(token)
        body["browser"], body["confirmation"] = _bound[token]
    return client.post("/bridge/redeem", json=body, headers=headers)


def test_a_guessing_run_over_http_hits_the_throttle(app, client, auth, w):
    limit = int(app.config.get("AUTOLOGIN_GUESS_LIMIT", 20))
    statuses = [_redeem(client, secrets.token_urlsafe(32)).status_code for _ in range(limit + 10)]
    assert statuses[:limit] == [404] * limit  # unknown tokens
    assert set(statuses[limit:]) == {429}, statuses  # then throttled
    # Once throttled, even a real token from that address is refused (a guess that hits is not let in)...
    auth.login("alice")
    good = _mint(client, w.granted.id)
    answer = _redeem(client, good)
    assert answer.status_code == 429 and "granted-pw-1" not in answer.get_data(as_text=True)
    # ...while the same token works for a browser at another address.
    answer = _redeem(client, good, address="198.51.100.67")
    assert answer.status_code == 200 and answer.get_json()["login"] == "granted@corp.test"
    print(f"guessing run: {limit} unknown-token answers, then {len(statuses) - limit} × 429")


def test_guesses_without_the_secret_never_reach_the_tokens(client, auth, w):
    auth.login("alice")
    good = _mint(client, w.granted.id)
    for headers in ({}, {tokens.SECRET_HEADER: "test-bridge-secre"}, {tokens.SECRET_HEADER: "x" * 10_000},
                    {tokens.SECRET_HEADER.lower(): "wrong"}, {"Authorization": "Bearer test-bridge-secret"}):
        answer = _redeem(client, good, headers=headers)
        assert answer.status_code == 401 and "granted-pw-1" not in answer.get_data(as_text=True)
    # The refused calls did not spend it.
    assert db.session.scalar(select(func.count(AutologinToken.id)).where(AutologinToken.used_at.is_(None))) == 1
    assert _redeem(client, good).status_code == 200
    answer = _redeem(client, good)  # once only
    assert answer.status_code == 410 and answer.get_json()["reason"] == "used"


def test_the_token_is_only_read_from_the_json_body(client, auth, w):
    auth.login("alice")
    good = _mint(client, w.granted.id)
    for answer in (client.post(f"/bridge/redeem?token={good}", headers=SECRET),
                   client.post("/bridge/redeem", data={"token": good}, headers=SECRET)):
        # No token in the JSON body: "unknown", as for any malformed token.
        assert answer.status_code == 404 and answer.get_json()["reason"] == "unknown"
    assert client.get(f"/bridge/redeem?token={good}", headers=SECRET).status_code == 405
    assert _redeem(client, good).status_code == 200


def test_the_hand_off_page_leaks_nothing_and_keeps_the_token_out_of_urls(client, auth, w):
    auth.login("alice")
    page = client.get("/")
    answer = client.post(f"/bridge/open/{w.granted.id}", data={"csrf_token": factories.csrf_from(page)})
    assert answer.status_code == 200 and "Location" not in answer.headers
    text = answer.get_data(as_text=True)
    assert "granted-pw-1" not in text and "granted@corp.test" not in text
    assert answer.headers["Referrer-Policy"] == "no-referrer" and "no-store" in answer.headers["Cache-Control"]
    token = factories.handoff_token(answer)
    # In a form field (a POST body), in no link or form action.
    assert not re.search(r'(href|src|action)="[^"]*' + re.escape(token), text)
    # Only the hash of the token is stored.
    stored = db.session.scalars(select(AutologinToken.token_hash)).all()
    assert token not in stored and tokens.hash_token(token) in stored


def test_what_a_foreign_page_can_make_a_browser_send_counts_against_nobody(app, client, auth, w):
    """Garbage bind requests through the victim's own browser: refused, no row, no throttle for anybody."""
    auth.login("alice")
    limit = int(app.config.get("AUTOLOGIN_GUESS_LIMIT", 20))
    before = db.session.scalar(select(func.count(AutologinEvent.id)))
    for n in range(limit + 5):
        client.set_cookie("cm_autologin", secrets.token_urlsafe(32), path="/bridge/bind")
        answer = client.get(f"/bridge/bind?browser={secrets.token_hex(32) if n % 2 else 'junk'}")
        # An unknown token, or no hand-off at all: answered as a link that does not exist.
        assert answer.status_code == 404 and "Location" not in answer.headers
    assert db.session.scalar(select(func.count(AutologinEvent.id))) == before
    # alice's own hand-off right after goes through.
    token = _mint(client, w.granted.id)
    answer = _redeem(client, token, address="127.0.0.1")
    assert answer.status_code == 200 and answer.get_json()["login"] == "granted@corp.test"
