"""Autologin: grants, the one-time token hand-off, the redeem endpoint, the top bar and its unread counts."""

from __future__ import annotations

import hmac
import re
import shutil
import subprocess
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.crypto import encrypt_secret
from app.extensions import db
from app.models import AutologinEvent, AutologinGrant, AutologinToken, MailAccount, MailServer, MailSettings
from app.models.base import utcnow
from app.services.autologin import grants as mailbox_grants
from app.services.autologin import handoff as mailbox_handoff
from app.services.autologin import unread as unread_counts
from roundcube_bridge import tokens
from tests import factories
from tests.ci import unavailable
from tests.conftest import postgresql_only

MAILBOX_PASSWORD = "s3cret-mailbox-pw"
SECRET_HEADERS = {tokens.SECRET_HEADER: "test-bridge-secret"}


def make_server(name="Corp IMAP", **kw) -> MailServer:
    values = dict(name=name, imap_host="imap.corp.test", imap_port=993, imap_security="ssl",
                  smtp_host="smtp.corp.test", smtp_port=465, smtp_security="ssl", smtp_auth=True)
    values.update(kw)
    server = MailServer(**values)
    db.session.add(server)
    db.session.commit()
    return server


def make_mailbox(app, server, name="Sales", login="sales@corp.test", password=MAILBOX_PASSWORD,
                 enabled=True) -> MailAccount:
    account = MailAccount(name=name, server=server, login=login, enabled=enabled,
                          password_enc=encrypt_secret(app.config["MAIL_ENCRYPTION_KEY"], password))
    db.session.add(account)
    db.session.commit()
    return account


def grant(account, *users):
    mailbox_grants.set_grants(account.id, [u.id for u in users])


@pytest.fixture
def mailbox(app):
    return make_mailbox(app, make_server())


def open_via_client(client, account_id):
    page = client.get("/")
    return client.post(f"/bridge/open/{account_id}", data={"csrf_token": factories.csrf_from(page)})


def token_from(response) -> str:
    return factories.handoff_token(response)


_bindings: dict[str, tuple[str, str]] = {}


def redeem_via_client(client, token, headers=SECRET_HEADERS, client_address="203.0.113.7"):
    """The plugin's redeem call, for a token bound (once) to a browser as the bind step does it."""
    if token not in _bindings:
        _bindings[token] = factories.bind_token(token)
    key, confirmation = _bindings[token]
    return client.post("/bridge/redeem", json={"token": token, "browser": key, "confirmation": confirmation,
                                               "client": client_address}, headers=headers)


def outcomes():
    return [e.outcome for e in db.session.scalars(select(AutologinEvent).order_by(AutologinEvent.id))]


# ---------------------------------------------------------------- pure token functions

def test_tokens_are_random_urlsafe_and_hashed():
    now = utcnow()
    a, b = tokens.mint(now, 60), tokens.mint(now, 60)
    assert a.value != b.value
    assert tokens.looks_like_token(a.value)
    assert a.token_hash == tokens.hash_token(a.value) and len(a.token_hash) == 64
    assert a.value not in a.token_hash
    assert a.expires_at == now + timedelta(seconds=60)
    assert tokens.is_expired(a.expires_at, now + timedelta(seconds=60))
    assert not tokens.is_expired(a.expires_at, now + timedelta(seconds=59))


@pytest.mark.parametrize("value", [None, "", "short", "a" * 200, "has space in it and more", "x/../../etc/passwd"])
def test_token_shape_rejects_garbage(value):
    assert not tokens.looks_like_token(value)


def test_secret_check_is_constant_time(monkeypatch):
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(tokens.hmac, "compare_digest", spy)
    assert tokens.secret_matches("abc", "abc")
    assert not tokens.secret_matches("abd", "abc")
    assert len(calls) == 2
    assert not tokens.secret_matches("anything", None)
    assert not tokens.secret_matches(None, "abc")


# ---------------------------------------------------------------- service: token lifecycle

def test_token_is_one_time_and_only_its_hash_is_stored(app, user, mailbox):
    grant(mailbox, user)
    token = mailbox_handoff.open_mailbox(user, mailbox.id, "198.51.100.1")
    row = db.session.scalar(select(AutologinToken))
    assert row.token_hash == tokens.hash_token(token)
    assert token not in {row.token_hash}
    handoff = factories.redeem_bound(token, "198.51.100.1")
    assert handoff.login == "sales@corp.test" and handoff.password == MAILBOX_PASSWORD
    assert (handoff.imap_host, handoff.imap_port, handoff.imap_security) == ("imap.corp.test", 993, "ssl")
    assert (handoff.smtp_host, handoff.smtp_port, handoff.smtp_security, handoff.smtp_auth) == \
        ("smtp.corp.test", 465, "ssl", True)
    with pytest.raises(mailbox_handoff.AutologinRefused) as second:
        factories.redeem_bound(token, "198.51.100.1")
    assert second.value.reason == "used" and second.value.status == 410
    assert outcomes() == ["issued", "redeemed", "refused: used"]


def test_expired_token_is_refused(app, user, mailbox):
    grant(mailbox, user)
    token = mailbox_handoff.open_mailbox(user, mailbox.id, None)
    row = db.session.scalar(select(AutologinToken))
    row.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    with pytest.raises(mailbox_handoff.AutologinRefused) as refused:
        factories.redeem_bound(token)
    assert refused.value.reason == "expired"
    # A refused hand-off spends its token: it is never tried again.
    assert db.session.scalar(select(AutologinToken)).used_at is not None


def test_ttl_comes_from_configuration(app, user, mailbox, monkeypatch):
    monkeypatch.setitem(app.config, "AUTOLOGIN_TOKEN_TTL", 7)
    grant(mailbox, user)
    mailbox_handoff.open_mailbox(user, mailbox.id, None)
    row = db.session.scalar(select(AutologinToken))
    assert row.expires_at - row.created_at == timedelta(seconds=7)


def test_forged_token_is_refused(app, user, mailbox):
    with pytest.raises(mailbox_handoff.AutologinRefused) as refused:
        mailbox_handoff.redeem(tokens.mint(utcnow(), 60).value, "203.0.113.9")
    assert refused.value.reason == "unknown" and refused.value.status == 404
    assert outcomes() == ["refused: unknown"]


def test_token_is_bound_to_its_user_and_mailbox(app, user, mailbox):
    other_box = make_mailbox(app, make_server("Other", imap_host="imap.other.test"), name="Support",
                             login="support@corp.test", password="other-pw")
    grant(mailbox, user)
    grant(other_box, user)
    token = mailbox_handoff.open_mailbox(user, mailbox.id, None)
    row = db.session.scalar(select(AutologinToken))
    assert (row.user_id, row.account_id) == (user.id, mailbox.id)
    handoff = factories.redeem_bound(token)
    # The token opens the mailbox it was minted for, never another one of the user's.
    assert (handoff.account_id, handoff.login, handoff.imap_host) == (mailbox.id, "sales@corp.test", "imap.corp.test")


def test_revoked_grant_after_minting_is_refused(app, user, mailbox):
    grant(mailbox, user)
    token = mailbox_handoff.open_mailbox(user, mailbox.id, None)
    mailbox_grants.set_grants(mailbox.id, [])
    with pytest.raises(mailbox_handoff.AutologinRefused) as refused:
        factories.redeem_bound(token)
    assert refused.value.reason == "revoked" and refused.value.status == 403
    assert outcomes()[-1] == "refused: revoked"


def test_revoked_grant_with_token_row_kept_says_revoked(app, user, mailbox):
    grant(mailbox, user)
    token = mailbox_handoff.open_mailbox(user, mailbox.id, None)
    # Remove only the grant (as a concurrent admin change would), keeping the token row.
    db.session.execute(AutologinGrant.__table__.delete())
    db.session.commit()
    with pytest.raises(mailbox_handoff.AutologinRefused) as refused:
        factories.redeem_bound(token)
    assert refused.value.reason == "revoked" and refused.value.status == 403
    assert outcomes()[-1] == "refused: revoked"


def test_no_grant_means_403_and_no_token(app, user, mailbox):
    with pytest.raises(mailbox_handoff.AutologinRefused) as refused:
        mailbox_handoff.open_mailbox(user, mailbox.id, "198.51.100.2")
    assert refused.value.status == 403
    assert db.session.scalar(select(func.count(AutologinToken.id))) == 0
    event = db.session.scalar(select(AutologinEvent))
    assert (event.user_id, event.account_id, event.address, event.outcome) == \
        (user.id, mailbox.id, "198.51.100.2", "refused: no grant")


def test_disabled_mailbox_is_not_offered_nor_opened(app, user):
    box = make_mailbox(app, make_server(), enabled=False)
    grant(box, user)
    assert mailbox_grants.mailboxes_for(user) == []
    with pytest.raises(mailbox_handoff.AutologinRefused):
        mailbox_handoff.open_mailbox(user, box.id, None)


@postgresql_only  # in-memory SQLite is one connection: there is no race to have there
def test_concurrent_redeems_spend_a_token_once(app, user, mailbox):
    grant(mailbox, user)
    token = mailbox_handoff.open_mailbox(user, mailbox.id, None)
    key, confirmation = factories.bind_token(token)
    results, barrier = [], threading.Barrier(4)

    def attempt():
        with app.app_context():
            barrier.wait()
            try:
                mailbox_handoff.redeem(token, None, browser_key=key, confirmation=confirmation)
                results.append("ok")
            except mailbox_handoff.AutologinRefused as exc:
                results.append(exc.reason)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["ok", "used", "used", "used"]


def test_guessing_is_throttled(app, user, mailbox, monkeypatch):
    monkeypatch.setitem(app.config, "AUTOLOGIN_GUESS_LIMIT", 3)
    for _ in range(3):
        with pytest.raises(mailbox_handoff.AutologinRefused):
            mailbox_handoff.redeem(tokens.mint(utcnow(), 60).value, "203.0.113.50")
    grant(mailbox, user)
    good = mailbox_handoff.open_mailbox(user, mailbox.id, None)
    key, confirmation = factories.bind_token(good)
    with pytest.raises(mailbox_handoff.AutologinRefused) as refused:
        mailbox_handoff.redeem(good, "203.0.113.50", browser_key=key, confirmation=confirmation)
    assert refused.value.reason == "throttled" and refused.value.status == 429
    # Another address is not affected.
    assert mailbox_handoff.redeem(good, "203.0.113.51", browser_key=key,
                                  confirmation=confirmation).login == "sales@corp.test"


def test_host_that_roundcube_would_expand_is_never_handed_out(app, user):
    box = make_mailbox(app, make_server(imap_host="%h"))
    grant(box, user)
    token = mailbox_handoff.open_mailbox(user, box.id, None)
    with pytest.raises(mailbox_handoff.AutologinRefused) as refused:
        factories.redeem_bound(token)
    assert refused.value.reason == "bad_server"


# ---------------------------------------------------------------- HTTP: open and redeem

def test_open_posts_a_one_time_token_to_roundcube_and_keeps_a_copy_for_the_bind_step(app, client, auth, user,
                                                                                      mailbox):
    grant(mailbox, user)
    auth.login("alice")
    response = open_via_client(client, mailbox.id)
    token = token_from(response)
    page = response.get_data(as_text=True)
    # A form that posts to Roundcube (sent by app.js): the token is in a POST body, never in a URL.
    assert f'action="{app.config["ROUNDCUBE_URL"]}"' in page and "data-autosubmit" in page
    assert "Location" not in response.headers and MAILBOX_PASSWORD not in page
    assert response.headers["Cache-Control"] == "no-store" and response.headers["Referrer-Policy"] == "no-referrer"
    cookie = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("cm_autologin="))
    assert f"cm_autologin={token};" in cookie and "Path=/bridge/bind" in cookie
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    answer = redeem_via_client(client, token)
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["login"] == "sales@corp.test" and body["password"] == MAILBOX_PASSWORD
    again = redeem_via_client(client, token)
    assert again.status_code == 410 and again.get_json()["reason"] == "used"
    assert MAILBOX_PASSWORD not in again.get_data(as_text=True)
    events = db.session.scalars(select(AutologinEvent).order_by(AutologinEvent.id)).all()
    assert [(e.user_id, e.account_id, e.outcome) for e in events] == [
        (user.id, mailbox.id, "issued"), (user.id, mailbox.id, "redeemed"), (user.id, mailbox.id, "refused: used")]
    assert events[1].address == "203.0.113.7" and events[1].at is not None


def test_open_without_grant_is_403_and_makes_no_token(client, auth, user, mailbox):
    auth.login("alice")
    response = open_via_client(client, mailbox.id)
    assert response.status_code == 403
    assert "not allowed to open this mailbox" in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count(AutologinToken.id))) == 0


def test_open_unknown_mailbox_is_403(client, auth, user):
    auth.login("alice")
    assert open_via_client(client, 9999).status_code == 403
    assert db.session.scalar(select(func.count(AutologinToken.id))) == 0


def test_open_needs_login_and_csrf(client, auth, user, mailbox):
    grant(mailbox, user)
    # Anonymous and without a token: CSRF is checked first (before the login), and nothing is minted.
    assert factories.csrf_refused(client.post(f"/bridge/open/{mailbox.id}"))
    auth.login("alice")
    assert factories.csrf_refused(client.post(f"/bridge/open/{mailbox.id}"))
    assert client.get(f"/bridge/open/{mailbox.id}").status_code == 405
    assert db.session.scalar(select(func.count(AutologinToken.id))) == 0


@pytest.mark.parametrize("headers", [{}, {tokens.SECRET_HEADER: "wrong"}, {tokens.SECRET_HEADER: ""},
                                     {"Authorization": "test-bridge-secret"}])
def test_redeem_without_the_shared_secret_is_401(client, auth, user, mailbox, headers):
    grant(mailbox, user)
    auth.login("alice")
    token = token_from(open_via_client(client, mailbox.id))
    answer = redeem_via_client(client, token, headers=headers)
    assert answer.status_code == 401
    assert MAILBOX_PASSWORD not in answer.get_data(as_text=True)
    # The token was not spent by the refused call: the real plugin can still use it.
    assert redeem_via_client(client, token).status_code == 200
    assert "refused: bad secret" in outcomes()


def test_redeem_uses_constant_time_compare(client, monkeypatch):
    seen = []
    real = hmac.compare_digest
    monkeypatch.setattr(tokens.hmac, "compare_digest", lambda a, b: seen.append(1) or real(a, b))
    answer = client.post("/bridge/redeem", json={"token": "x" * 43}, headers={tokens.SECRET_HEADER: "nope"})
    assert answer.status_code == 401
    assert seen


@pytest.mark.parametrize("payload", [None, {}, {"token": 5}, {"token": "bad token"}, {"token": ["a"]}, ["a"], "x", 7,
                                     {"token": "A" * 43, "client": {"x": 1}}])
def test_redeem_refuses_malformed_bodies(client, payload):
    answer = client.post("/bridge/redeem", json=payload, headers=SECRET_HEADERS) if payload is not None else \
        client.post("/bridge/redeem", data="not json", headers=SECRET_HEADERS)
    assert answer.status_code == 404 and answer.get_json()["reason"] == "unknown"


def test_redeem_is_csrf_exempt_but_secret_protected(client):
    answer = client.post("/bridge/redeem", json={"token": "A" * 43}, headers=SECRET_HEADERS)
    assert answer.status_code == 404  # not 400 (CSRF): the secret authenticates the server-to-server call


# ---------------------------------------------------------------- top bar, desk, unread

def test_top_bar_one_button(client, auth, user, mailbox):
    grant(mailbox, user)
    auth.login("alice")
    html = client.get("/").get_data(as_text=True)
    assert f'action="/bridge/open/{mailbox.id}"' in html
    assert "mailbox-button" in html and "mailbox-menu" not in html
    assert "Sales" in html
    assert "unread.js" in html


def test_top_bar_drop_down_for_several(app, client, auth, user, mailbox):
    second = make_mailbox(app, make_server("Other", imap_host="imap.other.test"), name="Support",
                          login="support@corp.test")
    grant(mailbox, user)
    grant(second, user)
    auth.login("alice")
    html = client.get("/").get_data(as_text=True)
    assert "mailbox-menu" in html and 'class="mailbox-button"' not in html
    assert f'action="/bridge/open/{mailbox.id}"' in html and f'action="/bridge/open/{second.id}"' in html


def test_top_bar_nothing_without_grant(client, auth, user, mailbox):
    auth.login("alice")
    html = client.get("/").get_data(as_text=True)
    assert "/bridge/open/" not in html and "mailbox-menu" not in html and "unread.js" not in html


def test_unread_count_shown_from_cache_and_switchable(app, client, auth, user, mailbox):
    mailbox.unread_count = 17
    db.session.commit()
    grant(mailbox, user)
    auth.login("alice")
    assert '<span class="badge">17</span>' in client.get("/").get_data(as_text=True)
    settings = MailSettings.get()
    settings.show_unread = False
    db.session.commit()
    assert '<span class="badge">17</span>' not in client.get("/").get_data(as_text=True)
    assert mailbox_grants.mailbox_buttons(user) == [{"id": mailbox.id, "name": "Sales", "unread": None}]


class FakeImap:
    """Stands in for ``open_imap``: every login is recorded, and STATUS answers ``unseen`` (or fails)."""

    def __init__(self, unseen=4, fail=None):
        self.unseen, self.fail, self.logins = unseen, fail, []

    def __call__(self, server, login, secret, *, timeout=None):
        self.logins.append((login, secret, timeout))
        if self.fail is not None:
            raise self.fail
        return self

    @property
    def folder(self):
        return self

    def status(self, folder, items):
        assert (folder, items) == ("INBOX", ["UNSEEN"])
        return {"UNSEEN": self.unseen}

    def logout(self):
        pass


@pytest.fixture
def fake_imap(monkeypatch):
    fake = FakeImap()
    monkeypatch.setattr(unread_counts, "open_imap", fake)
    return fake


def test_unread_poll_endpoint_answers_cached_counts_without_a_login(app, client, auth, user, mailbox, fake_imap):
    mailbox.unread_count = 3
    mailbox.unread_checked_at = None  # stale: still the poll only reads the cache
    db.session.commit()
    grant(mailbox, user)
    auth.login("alice")
    body = client.get("/bridge/unread").get_json()
    assert body["show"] is True
    assert body["mailboxes"] == [{"id": mailbox.id, "name": "Sales", "unread": 3}]
    client.get("/")
    client.get("/mailbox")
    assert fake_imap.logins == []


def test_periodic_refresh_asks_stale_granted_enabled_mailboxes_once_each(app, user, mailbox, fake_imap):
    server = mailbox.server
    fresh = make_mailbox(app, server, name="Fresh", login="fresh@corp.test")
    fresh.unread_count, fresh.unread_checked_at = 9, utcnow()
    off = make_mailbox(app, server, name="Off", login="off@corp.test", enabled=False)
    make_mailbox(app, server, name="Nobody's", login="nobody@corp.test")  # no grant: nobody sees its count
    db.session.commit()
    for account in (mailbox, fresh, off):
        grant(account, user)
    assert unread_counts.refresh_stale_counts() == [mailbox.id]
    assert fake_imap.logins == [("sales@corp.test", MAILBOX_PASSWORD, 5.0)]
    db.session.expire_all()
    assert db.session.get(MailAccount, mailbox.id).unread_count == 4
    assert db.session.get(MailAccount, fresh.id).unread_count == 9
    # Counted a moment ago: the next tick asks nobody.
    assert unread_counts.refresh_stale_counts() == []
    assert len(fake_imap.logins) == 1


def test_periodic_refresh_keeps_the_old_count_when_the_server_fails(app, user, mailbox, fake_imap):
    from app.connect.errors import MailConnectError

    mailbox.unread_count = 7
    db.session.commit()
    grant(mailbox, user)
    fake_imap.fail = MailConnectError("timeout", "No answer from imap.corp.test:993 within 5 seconds.")
    assert unread_counts.refresh_stale_counts() == [mailbox.id]
    db.session.expire_all()
    account = db.session.get(MailAccount, mailbox.id)
    assert account.unread_count == 7 and account.unread_checked_at is not None
    # Not asked again on every tick: the failed mailbox waits for the refresh interval like the others.
    assert unread_counts.refresh_stale_counts() == []
    account.unread_checked_at = utcnow() - timedelta(seconds=301)
    db.session.commit()
    assert unread_counts.refresh_stale_counts() == [mailbox.id]
    assert len(fake_imap.logins) == 2


def test_periodic_refresh_does_nothing_when_counts_are_off_or_the_tick_is_spent(app, user, mailbox, fake_imap):
    grant(mailbox, user)
    assert unread_counts.refresh_stale_counts(tick_seconds=0) == []
    settings = MailSettings.get()
    settings.show_unread = False
    db.session.commit()
    assert unread_counts.refresh_stale_counts() == []
    assert fake_imap.logins == []


def test_periodic_refresh_is_on_the_worker_schedule(app, user, mailbox, fake_imap):
    import importlib

    from app.tasks import schedule

    every, target = schedule.PERIODIC["refresh-unread-counts"]
    module, _, name = target.rpartition(".")
    grant(mailbox, user)
    assert every <= 60
    assert getattr(importlib.import_module(module), name)(app) == [mailbox.id]


def test_desk_mailbox_lists_the_users_mailboxes(client, auth, user, mailbox):
    grant(mailbox, user)
    auth.login("alice")
    html = client.get("/mailbox").get_data(as_text=True)
    assert "Sales" in html and f'action="/bridge/open/{mailbox.id}"' in html and ">Open<" in html


def test_desk_mailbox_empty_for_user_without_grant(client, auth, user, mailbox):
    auth.login("alice")
    html = client.get("/mailbox").get_data(as_text=True)
    assert "/bridge/open/" not in html and "No corporate mailbox" in html


# ---------------------------------------------------------------- admin pages

def test_admin_grants_page_saves_per_mailbox(app, client, auth, admin, user, mailbox):
    bob = factories.user("bob")
    auth.login("admin")
    page = client.get("/admin/autologin")
    html = page.get_data(as_text=True)
    assert "Sales" in html and "alice" in html.lower() and "bob" in html.lower()
    token = factories.csrf_from(page)
    prefix = f"m{mailbox.id}"
    response = client.post(f"/admin/autologin/{mailbox.id}",
                           data={f"{prefix}-csrf_token": token, f"{prefix}-user_ids": [str(user.id), str(bob.id)]})
    assert response.status_code == 302
    assert mailbox_grants.grants_by_account() == {mailbox.id: {user.id, bob.id}}
    response = client.post(f"/admin/autologin/{mailbox.id}",
                           data={f"{prefix}-csrf_token": token, f"{prefix}-user_ids": [str(bob.id)]})
    assert mailbox_grants.grants_by_account() == {mailbox.id: {bob.id}}
    html = client.get("/admin/autologin").get_data(as_text=True)
    assert re.search(rf'value="{bob.id}"[^>]*checked|checked[^>]*value="{bob.id}"', html)
    # Empty means nobody.
    client.post(f"/admin/autologin/{mailbox.id}", data={f"{prefix}-csrf_token": token})
    assert mailbox_grants.grants_by_account() == {}
    from app.models import AuditEntry
    assert db.session.scalar(select(func.count(AuditEntry.id)).where(AuditEntry.action == "autologin.grants")) == 3


def test_admin_grants_refuses_unknown_users_and_missing_csrf(client, auth, admin, user, mailbox):
    auth.login("admin")
    token = factories.csrf_from(client.get("/admin/autologin"))
    prefix = f"m{mailbox.id}"
    client.post(f"/admin/autologin/{mailbox.id}", data={f"{prefix}-csrf_token": token, f"{prefix}-user_ids": "9999"})
    client.post(f"/admin/autologin/{mailbox.id}", data={f"{prefix}-user_ids": str(user.id)})
    client.post(f"/admin/autologin/{mailbox.id}", data={f"{prefix}-csrf_token": token, f"{prefix}-user_ids": "x"})
    assert mailbox_grants.grants_by_account() == {}
    assert client.post("/admin/autologin/9999", data={"m9999-csrf_token": token}).status_code == 404


def test_admin_pages_are_for_administrators_only(client, auth, user):
    auth.login("alice")
    assert client.get("/admin/autologin").status_code == 403
    assert client.get("/admin/handoffs").status_code == 403


def test_handoff_log_newest_first_and_paginated(app, client, auth, admin, user, mailbox, monkeypatch):
    grant(mailbox, user)
    for _ in range(3):
        factories.redeem_bound(mailbox_handoff.open_mailbox(user, mailbox.id, "192.0.2.1"), "192.0.2.1")
    monkeypatch.setitem(app.config, "PER_PAGE", 4)
    auth.login("admin")
    html = client.get("/admin/handoffs").get_data(as_text=True)
    assert html.count("<tr>") == 5  # header + 4 rows
    assert "Page 1 of 2" in html and "alice" in html and "Sales" in html and "192.0.2.1" in html
    assert html.index("redeemed") < html.index("issued")
    assert client.get("/admin/handoffs?page=2").get_data(as_text=True).count("<tr>") == 3


def test_password_never_in_any_product_page(app, client, auth, admin, user, mailbox, caplog):
    caplog.set_level("DEBUG")
    grant(mailbox, user)
    auth.login("alice")
    token = token_from(open_via_client(client, mailbox.id))
    bodies = [client.get(url).get_data(as_text=True) for url in ("/", "/mailbox", "/bridge/unread")]
    redeem_via_client(client, token)
    redeem_via_client(client, token)
    auth.logout()
    auth.login("admin")
    bodies += [client.get(url).get_data(as_text=True) for url in ("/admin/autologin", "/admin/handoffs")]
    for body in bodies:
        assert MAILBOX_PASSWORD not in body
        assert token not in body
    assert all(MAILBOX_PASSWORD not in (e.outcome + (e.address or "")) for e in
               db.session.scalars(select(AutologinEvent)))
    # Nor in any log line of the whole hand-off (the token and the shared secret neither).
    assert caplog.records
    for line in caplog.text.splitlines():
        assert MAILBOX_PASSWORD not in line and token not in line and "test-bridge-secret" not in line


# ---------------------------------------------------------------- flask roundcube install

def test_roundcube_install_writes_plugin_config(app, runner, tmp_path):
    result = runner.invoke(args=["roundcube", "install", "--config-dir", str(tmp_path),
                                 "--base-url", "http://crm.corp.test:8000/"])
    assert result.exit_code == 0, result.output
    written = (tmp_path / "corporate_autologin.inc.php").read_text()
    assert "$config['corporate_autologin_url'] = 'http://crm.corp.test:8000/bridge/redeem';" in written
    assert f"$config['corporate_autologin_secret'] = '{app.config['BRIDGE_SECRET']}';" in written
    assert app.config["BRIDGE_SECRET"] not in result.output  # the secret is written, never printed
    assert (tmp_path / "corporate_autologin.inc.php").stat().st_mode & 0o007 == 0


def test_roundcube_install_escapes_php_and_refuses_bad_urls(app, runner, tmp_path):
    from app.cli.roundcube import plugin_config_text

    text = plugin_config_text("http://x/bridge/redeem", "a'b\\c")
    assert "'a\\'b\\\\c'" in text
    result = runner.invoke(args=["roundcube", "install", "--config-dir", str(tmp_path), "--url", "ftp://x"])
    assert result.exit_code != 0 and "http://" in result.output
    assert not (tmp_path / "corporate_autologin.inc.php").exists()


def test_mailbox_without_a_secret_is_refused_with_reason(app, user):
    box = make_mailbox(app, make_server(), password=None)
    grant(box, user)
    token = mailbox_handoff.open_mailbox(user, box.id, None)
    with pytest.raises(mailbox_handoff.AutologinRefused) as refused:
        factories.redeem_bound(token)
    assert refused.value.reason == "no_secret" and refused.value.status == 409
    assert outcomes()[-1] == "refused: no_secret"


# ---------------------------------------------------------------- the PHP side, statically

PLUGIN_DIR = Path(__file__).resolve().parents[2] / "roundcube_bridge" / "plugin" / "corporate_autologin"


@pytest.mark.parametrize("name", ["corporate_autologin.php", "config.inc.php.dist"])
def test_plugin_files_are_valid_php(name):
    php = shutil.which("php")
    if php is None:
        unavailable("PHP is not installed (scripts/install.sh installs it with Roundcube)")
    result = subprocess.run([php, "-l", str(PLUGIN_DIR / name)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr


def test_plugin_accepts_exactly_the_token_alphabet_we_mint():
    source = (PLUGIN_DIR / "corporate_autologin.php").read_text()
    assert "const TOKEN_PATTERN = '/" + tokens.TOKEN_PATTERN.pattern + "/';" in source
    assert f"const SECRET_HEADER = '{tokens.SECRET_HEADER}';" in source
