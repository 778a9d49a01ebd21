"""Settings → Users and ``flask users``: create, edit, disable, reset, promote; every change audited.

Run on SQLite and PostgreSQL, through the real pages with CSRF on.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry, User
from app.services import user_admin
from app.services.accounts import AccountError, authenticate
from app.services.autologin import grants
from tests import factories
from tests.clients import Browser


def _audit(action: str) -> list[AuditEntry]:
    return list(db.session.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


def _post(browser, url, data=None, form_url=None):
    """POST with the CSRF token of ``form_url`` (default: the users list)."""
    token = factories.csrf_from(browser.get(form_url or "/admin/users"))
    return browser.post(url, data={**(data or {}), "csrf_token": token})


@pytest.fixture
def admin_browser(app, admin):
    browser = Browser(app)
    assert browser.login("admin").status_code == 302
    return browser


def _user(name: str) -> User:
    return db.session.scalar(select(User).where(User.username == name))


# --------------------------------------------------------------------------- the service


def test_create_user_with_a_generated_password_is_audited_without_the_password(app):
    user, password = user_admin.create_user(user_admin.NewUser("bob", full_name="Bob B", email="Bob@Corp.test"))
    assert password and len(password) >= 16
    assert authenticate("bob", password, client="1.2.3.4").user.id == user.id
    (entry,) = _audit("user.create")
    assert entry.target == f"user {user.id} (bob)"
    assert password not in entry.details and "generated" in entry.details and "bob@corp.test" in entry.details


def test_the_last_active_administrator_is_neither_disabled_nor_demoted(app, admin, user):
    for change in (lambda: user_admin.set_active(admin, False), lambda: user_admin.set_admin(admin, False)):
        with pytest.raises(AccountError, match="last active administrator"):
            change()
    db.session.rollback()
    assert admin.is_admin and admin.active
    # With a second administrator, the first may go; a disabled admin does not count as the other one.
    other = factories.user("root", admin=True)
    assert user_admin.set_active(other, False)
    with pytest.raises(AccountError, match="last active administrator"):
        user_admin.set_admin(admin, False)
    db.session.rollback()
    assert user_admin.set_active(other, True)
    assert user_admin.set_admin(admin, False)
    assert [e.action for e in db.session.scalars(select(AuditEntry).order_by(AuditEntry.id))] == [
        "user.disable", "user.enable", "user.demote"]


def test_an_administrator_cannot_disable_or_demote_themself(app, admin):
    factories.user("root", admin=True)
    with pytest.raises(AccountError, match="your own account"):
        user_admin.set_active(admin, False, actor=admin)
    with pytest.raises(AccountError, match="your own account"):
        user_admin.set_admin(admin, False, actor=admin)


def test_disabling_ends_sessions_and_hides_the_mailbox_buttons(app, admin, user):
    account = factories.mail_account()
    factories.grant(user, account)
    assert [b["name"] for b in grants.mailbox_buttons(user)] == ["Support"]
    version = user.session_version
    assert user_admin.set_active(user, False, actor=admin)
    assert user.session_version == version + 1 and not user.active
    assert grants.mailbox_buttons(user) == []
    assert not user_admin.set_active(user, False, actor=admin)  # nothing changed, nothing audited
    assert len(_audit("user.disable")) == 1


def test_reset_password_refuses_a_short_one_and_audits_nothing_then(app, user):
    with pytest.raises(AccountError, match="at least 8"):
        user_admin.reset_password(user, "short")
    db.session.rollback()
    assert _audit("user.password_reset") == []
    assert user_admin.reset_password(user, "a long new password") is None
    assert authenticate("alice", "a long new password", client="1.2.3.4").user is not None
    (entry,) = _audit("user.password_reset")
    assert "a long new password" not in entry.details


def test_two_users_never_share_an_address(app, admin, user):
    with pytest.raises(AccountError, match="Another user already has the e-mail address alice@corp.test"):
        user_admin.create_user(user_admin.NewUser("alice2", email="Alice@Corp.test", password="long enough pw"))
    with pytest.raises(AccountError, match="Another user already has"):
        user_admin.update_profile(admin, user_admin.Profile("Admin", "alice@corp.test"))
    db.session.rollback()
    assert _audit("user.create") == [] and _audit("user.update") == []
    assert user_admin.update_profile(user, user_admin.Profile("Alice", "alice@corp.test")) == []  # her own address


def test_update_profile_says_what_changed_and_refuses_a_bad_address(app, user):
    changes = user_admin.update_profile(user, user_admin.Profile("Alice Liddell", "ALICE@wonder.test"))
    assert user.email == "alice@wonder.test" and user.full_name == "Alice Liddell"
    assert len(changes) == 2
    assert "alice@corp.test → alice@wonder.test" in _audit("user.update")[0].details
    with pytest.raises(AccountError, match="not an e-mail address"):
        user_admin.update_profile(user, user_admin.Profile("Alice", "not-an-address"))
    assert user_admin.update_profile(user, user_admin.Profile("Alice Liddell", "alice@wonder.test")) == []


# --------------------------------------------------------------------------- the pages


def test_admin_creates_a_user_with_a_generated_password_shown_once(app, admin_browser):
    page = _post(admin_browser, "/admin/users/new", {"username": "carol", "full_name": "Carol C",
                                                     "email": "carol@corp.test", "password": ""},
                 form_url="/admin/users/new")
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    text = page.get_data(as_text=True)
    marker = 'id="generated-password" class="secret">'
    password = text.split(marker, 1)[1].split("<", 1)[0]
    carol = Browser(app)
    assert carol.login("carol", password).status_code == 302
    listing = admin_browser.get("/admin/users").get_data(as_text=True)
    assert "carol" in listing and password not in listing


def test_admin_creates_edits_promotes_and_demotes(app, admin_browser):
    answer = _post(admin_browser, "/admin/users/new", {"username": "dave", "password": "dave's long password",
                                                       "is_admin": "y"}, form_url="/admin/users/new")
    assert answer.status_code == 302
    dave = _user("dave")
    assert dave.is_admin
    answer = _post(admin_browser, f"/admin/users/{dave.id}/edit", {"full_name": "Dave D", "email": "d@corp.test"},
                   form_url=f"/admin/users/{dave.id}/edit")
    assert answer.status_code == 302
    assert _post(admin_browser, f"/admin/users/{dave.id}/demote").status_code == 302
    db.session.expire_all()
    dave = _user("dave")
    assert (dave.full_name, dave.email, dave.is_admin) == ("Dave D", "d@corp.test", False)
    assert _post(admin_browser, f"/admin/users/{dave.id}/promote").status_code == 302
    db.session.expire_all()
    assert _user("dave").is_admin
    actions = [e.action for e in db.session.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert actions == ["user.create", "user.update", "user.demote", "user.promote"]
    assert all(e.user_id == _user("admin").id for e in db.session.scalars(select(AuditEntry)))


def test_disabling_from_the_page_logs_the_user_out_at_once(app, admin_browser, user):
    alice = Browser(app)
    assert alice.login("alice").status_code == 302
    assert alice.get("/records/contacts").status_code == 200
    answer = _post(admin_browser, f"/admin/users/{user.id}/disable")
    assert answer.status_code == 302
    assert "is disabled" in admin_browser.get("/admin/users").get_data(as_text=True)
    assert "/login" in alice.get("/records/contacts").headers["Location"]
    assert alice.login("alice").status_code != 302
    _post(admin_browser, f"/admin/users/{user.id}/enable")
    assert alice.login("alice").status_code == 302


def test_the_page_refuses_to_disable_oneself_in_words(app, admin_browser, admin):
    factories.user("root", admin=True)
    _post(admin_browser, f"/admin/users/{admin.id}/disable")
    page = admin_browser.get("/admin/users").get_data(as_text=True)
    assert "You cannot disable your own account" in page
    db.session.expire_all()
    assert _user("admin").active


def test_reset_password_page_typed_and_generated(app, admin_browser, user):
    url = f"/admin/users/{user.id}/password"
    differs = _post(admin_browser, url, {"password": "first long one", "confirm": "other long one"}, form_url=url)
    assert differs.status_code == 200 and "The two passwords differ" in differs.get_data(as_text=True)
    short = _post(admin_browser, url, {"password": "short", "confirm": "short"}, form_url=url)
    assert "at least 8 characters" in short.get_data(as_text=True)
    assert _post(admin_browser, url, {"password": "typed long one", "confirm": "typed long one"},
                 form_url=url).status_code == 302
    assert Browser(app).login("alice", "typed long one").status_code == 302
    empty = _post(admin_browser, url, {"password": "", "confirm": ""}, form_url=url)
    assert "Type the new password twice, or press Generate a password." in empty.get_data(as_text=True)
    shown = _post(admin_browser, url, {"password": "", "confirm": "", "generate": "y"}, form_url=url)
    password = shown.get_data(as_text=True).split('class="secret">', 1)[1].split("<", 1)[0]
    assert Browser(app).login("alice", password).status_code == 302
    assert len(_audit("user.password_reset")) == 2


def test_a_new_user_with_a_taken_name_gets_the_reason_and_nothing_is_stored(app, admin_browser, user):
    page = _post(admin_browser, "/admin/users/new", {"username": "ALICE", "password": "long enough pw"},
                 form_url="/admin/users/new")
    assert page.status_code == 200 and "is taken" in page.get_data(as_text=True)
    assert _audit("user.create") == []


@pytest.mark.parametrize("url", ["/admin/users", "/admin/users/new", "/admin/users/1/edit",
                                 "/admin/users/1/password"])
def test_ordinary_users_get_403_on_every_page(app, client, auth, admin, user, url):
    auth.login("alice")
    assert client.get(url).status_code == 403
    token = factories.csrf_from(client.get("/"))
    for action in ("disable", "enable", "promote", "demote"):
        assert client.post(f"/admin/users/1/{action}", data={"csrf_token": token}).status_code == 403
    db.session.expire_all()
    assert _user("admin").active and _user("admin").is_admin and not _user("alice").is_admin


def test_the_menu_offers_users_to_administrators(app, admin_browser):
    assert 'href="/admin/users">Users</a>' in admin_browser.get("/").get_data(as_text=True)


# --------------------------------------------------------------------------- the command line


def test_cli_create_is_audited(runner, app):
    result = runner.invoke(args=["users", "create", "erin", "--password", "long enough pw", "--admin"])
    assert result.exit_code == 0, result.output
    (entry,) = _audit("user.create")
    assert entry.target.endswith("(erin)") and entry.user_id is None and "role=administrator" in entry.details


def test_cli_list_json(runner, admin, user):
    user_admin.set_active(user, False)
    result = runner.invoke(args=["users", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["username"]: r for r in json.loads(result.output)}
    assert rows["admin"]["role"] == "admin" and rows["admin"]["active"] is True
    assert rows["alice"] == {**rows["alice"], "role": "user", "active": False, "email": "alice@corp.test"}


def test_cli_disable_enable_promote_demote_with_clear_errors(runner, admin, user):
    result = runner.invoke(args=["users", "disable", "admin"])
    assert result.exit_code != 0 and "last active administrator" in result.output
    assert runner.invoke(args=["users", "disable", "nobody"]).exit_code != 0
    assert "is disabled" in runner.invoke(args=["users", "disable", "alice"]).output
    assert "already disabled" in runner.invoke(args=["users", "disable", "alice"]).output
    assert "is enabled" in runner.invoke(args=["users", "enable", "alice"]).output
    assert "now an administrator" in runner.invoke(args=["users", "promote", "alice"]).output
    assert "now an ordinary user" in runner.invoke(args=["users", "demote", "admin"]).output
    result = runner.invoke(args=["users", "demote", "alice"])
    assert result.exit_code != 0 and "last active administrator" in result.output
    assert [e.action for e in db.session.scalars(select(AuditEntry).order_by(AuditEntry.id))] == [
        "user.disable", "user.enable", "user.promote", "user.demote"]
