"""Sessions end for real: log-out, a password change and disabling a user make old cookies worthless.

Each test keeps the cookies a browser (or a thief) had, ends the session the
way a person would, and replays the cookies in a fresh client (a
tests.clients.Browser: every request in an app context of its own).
"""

from __future__ import annotations

import pytest

from app.extensions import db
from app.services import accounts
from tests import factories
from tests.clients import Browser


def _login(browser, username: str, password: str = factories.PASSWORD, remember: bool = True):
    answer = browser.login(username, password, remember=remember)
    assert answer.status_code == 302, answer.status_code
    return answer


def _cookies(client) -> dict[str, str]:
    return {name: client.get_cookie(name).value for name in ("session", "remember_token")
            if client.get_cookie(name) is not None}


def _logged_in(app, cookies: dict[str, str]) -> bool:
    """Does a fresh browser holding only ``cookies`` get the start page (not the login page)?"""
    fresh = Browser(app)
    for name, value in cookies.items():
        fresh.set_cookie(name, value)
    return fresh.get("/").status_code == 200


@pytest.fixture
def people(app):
    return factories.user("alice"), factories.user("bob")


@pytest.fixture
def client(app):
    return Browser(app)


def test_logout_ends_the_session_cookie_and_the_remember_cookie(app, client, people):
    _login(client, "alice")
    cookies = _cookies(client)
    assert set(cookies) == {"session", "remember_token"}
    assert _logged_in(app, cookies) and _logged_in(app, {"remember_token": cookies["remember_token"]})
    client.logout()
    assert not _logged_in(app, {"session": cookies["session"]})
    assert not _logged_in(app, {"remember_token": cookies["remember_token"]})


def test_logout_ends_the_users_sessions_on_every_device_and_nobody_elses(app, people):
    laptop, phone, bobs = Browser(app), Browser(app), Browser(app)
    _login(laptop, "alice"), _login(phone, "alice"), _login(bobs, "bob")
    phone_cookies, bob_cookies = _cookies(phone), _cookies(bobs)
    laptop.logout()
    assert not _logged_in(app, phone_cookies)
    assert _logged_in(app, bob_cookies)
    # Logging in again works and gives cookies that work.
    _login(laptop, "alice")
    assert _logged_in(app, _cookies(laptop))


def test_a_password_change_ends_every_session(app, client, people):
    _login(client, "alice")
    cookies = _cookies(client)
    accounts.change_password(people[0], "a brand new password")
    assert not _logged_in(app, {"session": cookies["session"]})
    assert not _logged_in(app, {"remember_token": cookies["remember_token"]})
    _login(Browser(app), "alice", "a brand new password")


def test_disabling_a_user_ends_every_session(app, client, people):
    _login(client, "alice")
    cookies = _cookies(client)
    accounts.set_active(people[0], False)
    assert not _logged_in(app, {"session": cookies["session"]})
    assert not _logged_in(app, {"remember_token": cookies["remember_token"]})
    # Enabling again does not bring the old cookies back.
    accounts.set_active(people[0], True)
    assert not _logged_in(app, cookies)


def test_a_user_disabled_in_the_database_is_logged_out_too(app, client, people):
    _login(client, "alice")
    cookies = _cookies(client)
    people[0].active = False  # e.g. by another tool, without end_sessions
    db.session.commit()
    assert not _logged_in(app, cookies)


def test_forged_session_ids_are_refused(app, people):
    with app.test_request_context():
        from app.auth.routes import load_user

        assert load_user(f"{people[0].id}:0") is not None
        for forged in (str(people[0].id), f"{people[0].id}:1", f"{people[0].id}:", ":0", "x:0",
                       f"{2**40}:0", "-1:0", f"{people[0].id}:²", "²:0", f"{people[0].id}:0:0", None, ""):
            assert load_user(forged) is None, forged


def test_both_cookies_are_samesite_lax_and_httponly(client, people):
    answer = _login(client, "alice")
    for name in ("session", "remember_token"):
        header = next((h for h in answer.headers.getlist("Set-Cookie") if h.startswith(name + "=")), "")
        assert "samesite=lax" in header.lower() and "httponly" in header.lower(), (name, header)
