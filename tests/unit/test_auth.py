"""Login, logout, the throttle, redirects and headers."""

import pytest

from app.models import LoginThrottle
from tests import factories


def test_login_with_right_password_lands_on_start_page(client, auth, admin):
    response = auth.login("admin")
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert b"Welcome, Admin" in client.get("/").data


def test_wrong_password_is_refused_in_words(client, auth, admin):
    response = auth.login("admin", "nope")
    assert response.status_code == 200
    assert b"Wrong username or password." in response.data
    assert client.get("/").status_code == 302  # still anonymous


def test_pages_need_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


@pytest.mark.parametrize("target", ["https://evil.test/", "//evil.test/x", "/\\evil.test", "javascript:alert(1)"])
def test_no_open_redirect_after_login(client, admin, target):
    page = client.get("/login")
    response = client.post(f"/login?next={target}", data={
        "username": "admin", "password": factories.PASSWORD, "csrf_token": factories.csrf_from(page)})
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


def test_local_next_is_followed(client, admin):
    page = client.get("/login")
    response = client.post("/login?next=/records/contacts", data={
        "username": "admin", "password": factories.PASSWORD, "csrf_token": factories.csrf_from(page)})
    assert response.headers["Location"] == "/records/contacts"


def test_login_without_csrf_token_is_refused(client, admin):
    response = client.post("/login", data={"username": "admin", "password": factories.PASSWORD})
    assert factories.csrf_refused(response)
    assert client.get("/").status_code == 302


def test_repeated_failures_lock_the_account_from_that_address_even_for_the_right_password(app, client, auth, admin):
    app.config["LOGIN_MAX_FAILURES"] = 3
    for _ in range(3):
        auth.login("admin", "wrong")
    response = auth.login("admin")
    assert response.status_code == 429
    assert b"Too many failed logins" in response.data
    assert client.get("/").status_code == 302
    assert LoginThrottle.query.filter_by(key="pair:127.0.0.1|admin").one().locked_until is not None


def test_success_clears_the_failures_of_its_own_pair_only(app, auth, admin):
    auth.login("admin", "wrong")
    auth.login("admin")
    keys = {t.key: t.failures for t in LoginThrottle.query}
    assert keys == {"user:admin": 1, "ip:127.0.0.1": 1}


def test_logout_needs_post_with_csrf(client, auth, admin):
    auth.login("admin")
    assert client.get("/logout").status_code == 405
    auth.logout()
    assert client.get("/").status_code == 302


def test_security_headers_on_every_page(client):
    response = client.get("/login")
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]


def test_session_cookie_is_httponly_and_samesite(client, auth, admin):
    response = auth.login("admin")
    cookie = response.headers.get("Set-Cookie", "")
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


def test_inactive_user_cannot_log_in(app, auth):
    u = factories.user("bob")
    u.active = False
    from app.extensions import db
    db.session.commit()
    assert b"Wrong username or password." in auth.login("bob").data


def test_cli_creates_admin(runner):
    result = runner.invoke(args=["users", "create", "root2", "--password", "long enough pw", "--admin"])
    assert result.exit_code == 0, result.output
    assert "administrator root2" in result.output
    result = runner.invoke(args=["users", "create", "root2", "--password", "long enough pw"])
    assert result.exit_code != 0
    assert "taken" in result.output


def test_cli_refuses_short_password(runner):
    result = runner.invoke(args=["users", "create", "x", "--password", "short"])
    assert result.exit_code != 0
    assert "at least 8 characters" in result.output
