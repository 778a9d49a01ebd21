"""The login throttle cannot be turned against someone else, and it still slows guessing down.

Each test sends what an attacker sends (wrong passwords from one address,
spraying names, a forged X-Forwarded-For) and then checks that the real user
logs in, or that the attacker is held back.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from app import create_app
from app.extensions import db
from app.models import LoginThrottle
from app.models.base import utcnow
from tests import factories
from tests.conftest import drop_app

ATTACKER, VICTIM, OTHER = "198.51.100.7", "203.0.113.20", "203.0.113.21"


def _login(client, username: str, password: str, address: str, headers=None):
    token = factories.csrf_from(client.get("/login", environ_base={"REMOTE_ADDR": address}, headers=headers))
    answer = client.post("/login", data={"username": username, "password": password, "csrf_token": token},
                         environ_base={"REMOTE_ADDR": address}, headers=headers)
    if answer.status_code == 302:  # logged in: log out again so that the next login starts anonymous
        client.post("/logout", data={"csrf_token": factories.csrf_from(client.get("/"))},
                    environ_base={"REMOTE_ADDR": address}, headers=headers)
    return answer


@pytest.fixture
def people(app):
    app.config.update(LOGIN_MAX_FAILURES=5, LOGIN_LOCK_SECONDS=300)
    return factories.user("admin", admin=True), factories.user("alice"), factories.user("mallory")


def test_wrong_passwords_from_one_address_do_not_lock_the_account_elsewhere(client, people):
    for _ in range(8):  # more than the limit, to renew the lock as an attacker would
        _login(client, "admin", "guess", ATTACKER)
    assert _login(client, "admin", "guess", ATTACKER).status_code == 429
    # The real administrator, with the right password from another address, is let in.
    assert _login(client, "admin", factories.PASSWORD, VICTIM).status_code == 302
    # The attacker's own address stays held back, even with the right password.
    assert _login(client, "admin", factories.PASSWORD, ATTACKER).status_code == 429


def test_other_spellings_of_a_name_count_as_that_name(client, people):
    for spelling in ("Admin ", " ADMIN", "admin", "aDmin  ", "admin"):
        _login(client, spelling, "guess", ATTACKER)
    assert _login(client, "admin", factories.PASSWORD, ATTACKER).status_code == 429
    assert _login(client, "  Admin ", factories.PASSWORD, VICTIM).status_code == 302


def test_failures_of_one_person_never_lock_out_another_from_the_same_address(client, people):
    for _ in range(6):
        _login(client, "nobody-such", "guess", ATTACKER)
    assert _login(client, "alice", factories.PASSWORD, ATTACKER).status_code == 302


def test_guessing_from_many_addresses_holds_back_only_addresses_that_failed(app, client, people):
    app.config["LOGIN_ACCOUNT_MAX_FAILURES"] = 6
    guessers = [f"192.0.2.{n}" for n in range(1, 7)]
    for address in guessers:  # one guess each: no pair reaches its own limit
        assert _login(client, "admin", "guess", address).status_code == 200
    # The account is under attack: each guessing address is held back now, after a single failure...
    assert _login(client, "admin", "guess-2", guessers[0]).status_code == 429
    assert _login(client, "admin", factories.PASSWORD, guessers[0]).status_code == 429
    # ...while the owner, from an address that did not fail, logs in with the right password.
    assert _login(client, "admin", factories.PASSWORD, VICTIM).status_code == 302
    # Other accounts are not affected.
    assert _login(client, "alice", factories.PASSWORD, guessers[1]).status_code == 302


def test_a_good_login_in_between_does_not_reset_the_address_counter(app, client, people):
    """Spraying: wrong passwords for many names, a good login of the attacker's own every few guesses."""
    app.config["LOGIN_ADDRESS_MAX_FAILURES"] = 8
    answers = []
    for n in range(8):
        answers.append(_login(client, f"user{n}", "Winter2026!", ATTACKER).status_code)
        if n % 3 == 2:
            assert _login(client, "mallory", factories.PASSWORD, ATTACKER).status_code == 302
    assert answers[:7] == [200] * 7 and answers[7] == 429, answers
    # The address is refused for every account now, its own included, until the lock ends.
    assert _login(client, "mallory", factories.PASSWORD, ATTACKER).status_code == 429
    assert _login(client, "alice", factories.PASSWORD, VICTIM).status_code == 302


def test_a_success_resets_only_its_own_pair(client, people):
    for _ in range(4):
        _login(client, "admin", "guess", ATTACKER)
    assert _login(client, "mallory", factories.PASSWORD, ATTACKER).status_code == 302
    assert _login(client, "admin", "guess", ATTACKER).status_code == 429  # the fifth failure for admin


def test_a_lock_ends_by_itself(client, people):
    for _ in range(5):
        _login(client, "alice", "guess", ATTACKER)
    assert _login(client, "alice", factories.PASSWORD, ATTACKER).status_code == 429
    # The lock's time passes (moved in the table rather than waited for).
    past = utcnow() - timedelta(seconds=1)
    db.session.execute(update(LoginThrottle).values(locked_until=past, first_failure_at=past - timedelta(hours=1)))
    db.session.commit()
    assert _login(client, "alice", factories.PASSWORD, ATTACKER).status_code == 302
    # And after the lock the count starts again from zero: one failure does not lock.
    assert _login(client, "alice", "guess", ATTACKER).status_code == 200
    assert _login(client, "alice", factories.PASSWORD, ATTACKER).status_code == 302


def test_an_unknown_name_runs_the_password_hash_like_a_known_one(client, people, monkeypatch):
    import werkzeug.security

    from app.models import users as user_model
    from app.services import accounts

    calls = []
    real = werkzeug.security.check_password_hash

    def counting(pwhash, password):
        calls.append(pwhash.split("$", 1)[0])
        return real(pwhash, password)

    monkeypatch.setattr(user_model, "check_password_hash", counting)
    monkeypatch.setattr(accounts, "check_password_hash", counting, raising=False)
    people[1].active = False
    db.session.commit()
    for name in ("admin", "no-such-user", "alice"):  # known, unknown, disabled
        calls.clear()
        assert _login(client, name, "wrong password", OTHER).status_code == 200
        # One hash of the same kind (the method of real hashes) for every name.
        assert len(calls) == 1 and calls[0] == people[0].password_hash.split("$", 1)[0], (name, calls)


def test_forwarded_addresses_are_ignored_unless_proxies_are_configured(client, people):
    # Without TRUSTED_PROXY_HOPS a client cannot pick the address it is counted under.
    for n in range(5):
        _login(client, "alice", "guess", ATTACKER, headers={"X-Forwarded-For": f"10.9.9.{n}"})
    assert _login(client, "alice", factories.PASSWORD, ATTACKER,
                  headers={"X-Forwarded-For": "10.9.9.99"}).status_code == 429


def test_behind_a_configured_proxy_each_client_is_counted_by_its_own_address(tmp_path):
    """Behind nginx every request comes from 127.0.0.1: the throttle must count the forwarded client."""
    app = create_app("testing", SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'proxy.db'}",
                     INSTANCE_PATH=str(tmp_path), TRUSTED_PROXY_HOPS=1)
    with app.app_context():
        db.create_all()
        factories.user("alice")
    try:
        client = app.test_client()
        for _ in range(6):  # a stranger, through the proxy
            _login(client, "alice", "guess", "127.0.0.1", headers={"X-Forwarded-For": ATTACKER})
        answer = _login(client, "alice", factories.PASSWORD, "127.0.0.1", headers={"X-Forwarded-For": VICTIM})
        assert answer.status_code == 302
        # One hop trusted: a client's own X-Forwarded-For entry in front of nginx's is not believed.
        answer = _login(client, "alice", factories.PASSWORD, "127.0.0.1",
                        headers={"X-Forwarded-For": f"{VICTIM}, {ATTACKER}"})
        assert answer.status_code == 429
    finally:
        drop_app(app)
