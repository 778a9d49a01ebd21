"""OAuth 2.0 (XOAUTH2) end to end: a real local OAuth provider, a Dovecot whose ``oauth2`` passdb asks
that provider about every token, the product's *Connect account* routes, the scanner and the hand-off.

Nothing is mocked: the app talks to the provider over HTTP (Authlib), Dovecot introspects the tokens
the app logs in with, and Roundcube logs in with XOAUTH2.
"""

from __future__ import annotations

import re
import secrets
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import select

from app.connect import oauth_tokens
from app.crypto import decrypt_secret, encrypt_secret
from app.extensions import db
from app.models import MailAccount, MailServer, ScanFolder, ScanRun, User
from app.models.base import utcnow
from app.scanning.run import run_scan
from app.services.autologin import grants as mailbox_grants
from app.services.autologin import handoff as mailbox_handoff
from app.tasks import schedule
from roundcube_bridge import tokens as tokens_mod
from tests import factories
from tests.oauth_provider import OAuthProvider
from tests.oauth_stack import oauth_dovecot_or_fail

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def provider():
    provider = OAuthProvider().start()
    yield provider
    provider.stop()


@pytest.fixture(scope="module")
def oauth_dovecot(provider):
    dovecot = oauth_dovecot_or_fail(provider)
    yield dovecot
    dovecot.stop()


def message(i: int, to: str) -> bytes:
    return (f"From: Jane <jane@acme.test>\r\nTo: {to}\r\nSubject: OAuth question {i}\r\n"
            f"Date: Mon, 02 Nov 2026 10:{i:02d}:00 +0000\r\nMessage-ID: <oauth-{i}-{secrets.token_hex(4)}@acme.test>"
            f"\r\n\r\nHello over XOAUTH2, message {i}.\r\n").encode()


def new_box(dovecot, prefix="oauth") -> tuple[str, str]:
    login, password = f"{prefix}-{secrets.token_hex(4)}@corp.test", secrets.token_urlsafe(12)
    dovecot.add_user(login, password)
    return login, password


def oauth_server(app, provider, dovecot, name="OAuth mail") -> MailServer:
    server = MailServer(name=f"{name} {secrets.token_hex(3)}", imap_host=dovecot.host, imap_port=dovecot.port,
                        imap_security="none", smtp_host="127.0.0.1", smtp_port=10025, smtp_security="none",
                        smtp_auth=False, auth_method="oauth2", oauth_provider="generic",
                        oauth_client_id=provider.client_id,
                        oauth_client_secret_enc=encrypt_secret(app.config["MAIL_ENCRYPTION_KEY"],
                                                               provider.client_secret),
                        oauth_authorize_url=provider.authorize_url, oauth_token_url=provider.token_url,
                        oauth_scopes="mail offline_access")
    db.session.add(server)
    db.session.commit()
    return server


def scanner(server: MailServer, login: str, *, name="OAuth box", password_enc=None) -> MailAccount:
    account = MailAccount(name=name, server=server, login=login, password_enc=password_enc,
                          actions="create_email,bind_email", folders=[ScanFolder(name="INBOX", direction="incoming")])
    db.session.add(account)
    db.session.commit()
    return account


def connect(client, provider, account_id: int, login: str, *, follow=True):
    """Press Connect account, follow the redirect to the provider and back to the callback."""
    page = client.get("/admin/scanners")
    assert b"onnect account" in page.data  # Connect, or Reconnect once connected
    started = client.post(f"/admin/scanners/{account_id}/oauth/connect",
                          data={"csrf_token": factories.csrf_from(page)})
    assert started.status_code == 302
    location = started.headers["Location"]
    assert location.startswith(provider.authorize_url)
    query = parse_qs(urlsplit(location).query)
    assert query["code_challenge_method"] == ["S256"] and query["login_hint"] == [login]
    provider.approve_as = login
    at_provider = requests.get(location, allow_redirects=False, timeout=10)
    assert at_provider.status_code == 302
    back = urlsplit(at_provider.headers["Location"])
    assert back.path == "/admin/oauth/callback"
    if not follow:
        return back
    return client.get(f"{back.path}?{back.query}", follow_redirects=True)


def tokens(app, account_id: int) -> tuple[str | None, str | None]:
    db.session.expire_all()
    account = db.session.get(MailAccount, account_id)
    key = app.config["MAIL_ENCRYPTION_KEY"]
    return (decrypt_secret(key, account.oauth_refresh_token_enc),
            decrypt_secret(key, account.oauth_access_token_enc))


def expire_stored_token(account_id: int) -> None:
    """What the passing of an hour does: the stored access token is past its expiry."""
    db.session.execute(MailAccount.__table__.update().where(MailAccount.__table__.c.id == account_id)
                       .values(oauth_expires_at=utcnow() - timedelta(minutes=1)))
    db.session.commit()


def test_connect_account_through_the_routes_stores_encrypted_tokens(app, client, auth, admin, provider,
                                                                   oauth_dovecot):
    login, _ = new_box(oauth_dovecot)
    account = scanner(oauth_server(app, provider, oauth_dovecot), login)
    auth.login("admin")

    page = connect(client, provider, account.id, login)

    assert f"Account {login} connected".encode() in page.data
    db.session.expire_all()
    stored = db.session.get(MailAccount, account.id)
    refresh, access = tokens(app, account.id)
    assert provider.refresh_state(refresh) == "active" and provider.access_active(access)
    # Encrypted at rest, and never shown back.
    assert refresh not in stored.oauth_refresh_token_enc and access not in stored.oauth_access_token_enc
    assert refresh.encode() not in page.data and access.encode() not in page.data
    assert stored.oauth_expires_at > utcnow() + timedelta(minutes=30)
    assert stored.health == "active"
    # The list now offers to reconnect rather than connect.
    assert b"Reconnect account" in client.get("/admin/scanners").data


def test_callback_refuses_a_reused_or_foreign_state_and_shows_provider_errors(app, client, auth, admin, provider,
                                                                            oauth_dovecot):
    login, _ = new_box(oauth_dovecot)
    account = scanner(oauth_server(app, provider, oauth_dovecot), login)
    auth.login("admin")
    back = connect(client, provider, account.id, login, follow=False)
    assert "connected" in client.get(f"{back.path}?{back.query}", follow_redirects=True).get_data(as_text=True)
    # The same answer again (a replay): refused, nothing changes.
    before = tokens(app, account.id)
    again = client.get(f"{back.path}?{back.query}", follow_redirects=True).get_data(as_text=True)
    assert "already used" in again
    assert tokens(app, account.id) == before
    # A state this browser never started (another session's, or forged).
    forged = client.get("/admin/oauth/callback?code=abc&state=" + secrets.token_urlsafe(16), follow_redirects=True)
    assert "does not belong to a Connect account started in this browser" in forged.get_data(as_text=True)
    # The provider's own error, in plain words.
    provider.deny = "access_denied"
    try:
        denied = connect(client, provider, account.id, login).get_data(as_text=True)
    finally:
        provider.deny = None
    assert "access was denied at the provider" in denied


def test_oauth_scanner_scans_with_xoauth2(app, provider, oauth_dovecot, client, auth, admin):
    login, password = new_box(oauth_dovecot)
    for i in (1, 2):
        oauth_dovecot.append(login, password, "INBOX", message(i, login))
    account = scanner(oauth_server(app, provider, oauth_dovecot), login)
    auth.login("admin")
    connect(client, provider, account.id, login)

    run = run_scan(account.id)

    assert run.status == "done", run.message
    assert run.created == 2
    # Dovecot really checked our token with the provider, and the login was XOAUTH2.
    assert re.search(rf"Login: user=<{re.escape(login)}>, method=XOAUTH2", oauth_dovecot.log())
    assert provider.count("/introspect") >= 1


def test_expired_access_token_is_refreshed_and_the_rotated_refresh_token_saved(app, provider, oauth_dovecot,
                                                                              client, auth, admin):
    login, password = new_box(oauth_dovecot)
    oauth_dovecot.append(login, password, "INBOX", message(1, login))
    account = scanner(oauth_server(app, provider, oauth_dovecot), login)
    auth.login("admin")
    connect(client, provider, account.id, login)
    first_refresh, first_access = tokens(app, account.id)
    provider.expire_access_tokens(login)
    expire_stored_token(account.id)
    refreshes = provider.count("/token", grant_type="refresh_token")

    run = run_scan(account.id)

    assert run.status == "done", run.message
    assert provider.count("/token", grant_type="refresh_token") == refreshes + 1
    second_refresh, second_access = tokens(app, account.id)
    assert second_access != first_access and provider.access_active(second_access)
    assert second_refresh != first_refresh
    # The provider now refuses the old refresh token...
    old = requests.post(provider.token_url, data={"grant_type": "refresh_token", "refresh_token": first_refresh,
                                                  "client_id": provider.client_id,
                                                  "client_secret": provider.client_secret}, timeout=10)
    assert old.status_code == 400 and old.json()["error"] == "invalid_grant"
    # ...so the next expiry only works because the new one was saved.
    oauth_dovecot.append(login, password, "INBOX", message(2, login))
    provider.expire_access_tokens(login)
    expire_stored_token(account.id)
    run = run_scan(account.id)
    assert run.status == "done", run.message
    assert run.created == 1
    assert provider.refresh_state(second_refresh) == "used"
    assert db.session.get(MailAccount, account.id).health == "active"


def test_access_token_refreshes_shortly_before_expiry_and_is_reused_while_fresh(app, provider, oauth_dovecot):
    login, _ = new_box(oauth_dovecot)
    account = scanner(oauth_server(app, provider, oauth_dovecot), login)
    issued = provider.issue(login)
    key = app.config["MAIL_ENCRYPTION_KEY"]
    account.oauth_refresh_token_enc = encrypt_secret(key, issued["refresh_token"])
    account.oauth_access_token_enc = encrypt_secret(key, issued["access_token"])
    account.oauth_expires_at = utcnow() + timedelta(hours=1)
    db.session.commit()
    calls = provider.count("/token")
    assert oauth_tokens.access_token(account) == issued["access_token"]
    assert provider.count("/token") == calls  # fresh: no provider call
    # Less than the margin left: refreshed before a login could race the expiry.
    account.oauth_expires_at = utcnow() + timedelta(seconds=oauth_tokens.REFRESH_MARGIN // 2)
    db.session.commit()
    renewed = oauth_tokens.access_token(account)
    assert renewed != issued["access_token"] and provider.access_active(renewed)
    assert provider.refresh_state(issued["refresh_token"]) == "used"


def test_revoked_grant_fails_its_run_needs_reconnect_and_never_stops_the_others(app, provider, oauth_dovecot,
                                                                               client, auth, admin):
    key = app.config["MAIL_ENCRYPTION_KEY"]
    login, password = new_box(oauth_dovecot)
    oauth_dovecot.append(login, password, "INBOX", message(1, login))
    account = scanner(oauth_server(app, provider, oauth_dovecot), login, name="OAuth box")
    # A second mailbox on a password server, scanned in the same schedule.
    other_login, other_password = new_box(oauth_dovecot, "plain")
    oauth_dovecot.append(other_login, other_password, "INBOX", message(2, other_login))
    plain_server = MailServer(name=f"Password mail {secrets.token_hex(3)}", imap_host=oauth_dovecot.host,
                              imap_port=oauth_dovecot.port, imap_security="none", smtp_host="127.0.0.1",
                              smtp_port=10025, smtp_security="none")
    db.session.add(plain_server)
    other = scanner(plain_server, other_login, name="Password box",
                    password_enc=encrypt_secret(key, other_password))
    auth.login("admin")
    connect(client, provider, account.id, login)
    refresh, _ = tokens(app, account.id)
    provider.revoke_user(login)  # e.g. the mailbox owner removed the app, or an admin revoked it
    expire_stored_token(account.id)

    schedule.enqueue_due(app)  # inline queue: both scanners scan now, one after the other

    db.session.expire_all()
    runs = {r.account_id: r for r in db.session.scalars(select(ScanRun))}
    failed = runs[account.id]
    assert failed.status == "failed"
    assert "The mailbox's OAuth authorization was revoked or expired: reconnect the account" in failed.message
    assert refresh not in failed.message
    assert db.session.get(MailAccount, account.id).health == "reconnect"
    assert runs[other.id].status == "done" and runs[other.id].created == 1
    listing = client.get("/admin/scanners").get_data(as_text=True)
    assert "Reconnect needed" in listing
    form = client.get(f"/admin/scanners/{account.id}/edit").get_data(as_text=True)
    assert "Reconnect needed" in form and "Reconnect account" in form
    # Until someone reconnects, runs fail at once without asking the provider again.
    calls = provider.count("/token")
    again = run_scan(account.id)
    assert again.status == "failed" and "reconnect the account" in again.message
    assert provider.count("/token") == calls

    # Reconnecting through the page brings the scanner back.
    page = connect(client, provider, account.id, login)
    assert b"connected" in page.data
    db.session.expire_all()
    assert db.session.get(MailAccount, account.id).health == "active"
    run = run_scan(account.id)
    assert run.status == "done" and run.created == 1, run.message


def test_test_login_of_an_unconnected_oauth_scanner_says_connect_first(app, provider, oauth_dovecot, client, auth,
                                                                      admin):
    login, _ = new_box(oauth_dovecot)
    account = scanner(oauth_server(app, provider, oauth_dovecot), login)
    auth.login("admin")
    page = client.get("/admin/scanners")
    answer = client.post(f"/admin/scanners/{account.id}/test-login", data={"csrf_token": factories.csrf_from(page)},
                         follow_redirects=True).get_data(as_text=True)
    assert "not connected yet" in answer and "Connect account" in answer


def _redeem(app, token: str):
    """The plugin's redeem call for ``token``, bound to a browser as the bind step does it."""
    key, confirmation = factories.bind_token(token)
    return app.test_client().post("/bridge/redeem", headers={tokens_mod.SECRET_HEADER: app.config["BRIDGE_SECRET"]},
                                  json={"token": token, "browser": key, "confirmation": confirmation,
                                        "client": "127.0.0.1"})


def test_handoff_of_an_oauth_mailbox_answers_with_a_fresh_access_token(app, provider, oauth_dovecot):
    login, _ = new_box(oauth_dovecot)
    account = scanner(oauth_server(app, provider, oauth_dovecot), login)
    issued = provider.issue(login)
    key = app.config["MAIL_ENCRYPTION_KEY"]
    account.oauth_refresh_token_enc = encrypt_secret(key, issued["refresh_token"])
    account.oauth_access_token_enc = encrypt_secret(key, issued["access_token"])
    account.oauth_expires_at = utcnow() - timedelta(minutes=1)  # expired: the hand-off must refresh
    alice = factories.user(username="alice")
    with app.test_request_context():
        mailbox_grants.set_grants(account.id, [alice.id])
    token = mailbox_handoff.open_mailbox(db.session.get(User, alice.id), account.id, "127.0.0.1")

    response = _redeem(app, token)

    body = response.get_json()
    assert response.status_code == 200, body
    assert body["auth_type"] == "xoauth2" and body["login"] == login
    access = body["password"].removeprefix("Bearer ")
    assert body["password"].startswith("Bearer ") and access != issued["access_token"]
    assert provider.access_active(access)
    assert provider.refresh_state(issued["refresh_token"]) == "used"  # rotated, and saved:
    refresh, _ = tokens(app, account.id)
    assert provider.refresh_state(refresh) == "active"
    # A revoked grant: the hand-off is refused in words, the token spent, the scanner marked.
    provider.revoke_user(login)
    expire_stored_token(account.id)
    token = mailbox_handoff.open_mailbox(db.session.get(User, alice.id), account.id, "127.0.0.1")
    refused = _redeem(app, token)
    assert refused.status_code == 409 and refused.get_json()["reason"] == "reconnect"
    db.session.expire_all()
    assert db.session.get(MailAccount, account.id).health == "reconnect"
    # From then on the product itself says so when the user clicks, without minting a token.
    with pytest.raises(mailbox_handoff.AutologinRefused) as later:
        mailbox_handoff.open_mailbox(db.session.get(User, alice.id), account.id, "127.0.0.1")
    assert later.value.reason == "reconnect" and "reconnect the account" in later.value.message


def test_roundcube_opens_an_oauth_mailbox_with_xoauth2(provider, oauth_dovecot, tmp_path):
    """The whole hand-off: Flask mints, the plugin redeems, Roundcube logs in to Dovecot with XOAUTH2."""
    from tests.autologin_stack import roundcube_logs, start_stack

    login, password = new_box(oauth_dovecot)
    oauth_dovecot.append(login, password, "INBOX", message(7, login))
    stack = start_stack(tmp_path)
    try:
        with stack.app.app_context():
            server = oauth_server(stack.app, provider, oauth_dovecot)
            account = scanner(server, login, name="OAuth desk")
            issued = provider.issue(login)
            key = stack.app.config["MAIL_ENCRYPTION_KEY"]
            account.oauth_refresh_token_enc = encrypt_secret(key, issued["refresh_token"])
            account.oauth_access_token_enc = encrypt_secret(key, issued["access_token"])
            account.oauth_expires_at = utcnow() - timedelta(minutes=1)  # the hand-off refreshes first
            db.session.commit()
            account_id = account.id
        user_id = stack.add_user("olivia")
        stack.grant(account_id, user_id)
        session = stack.browser("olivia")

        page = stack.open_mailbox(session, account_id)

        assert page.status_code == 200, roundcube_logs(stack)
        assert re.search(r'header-title username">([^<]+)<', page.text).group(1) == login
        token = re.search(r'"request_token":"([^"]+)"', page.text).group(1)
        listing = session.get(stack.roundcube_url, params={"_task": "mail", "_action": "list", "_mbox": "INBOX",
                                                            "_remote": "1"},
                              headers={"X-Roundcube-Request": token}, timeout=30)
        assert "OAuth question 7" in listing.text
        # Both the login and the later request went in with XOAUTH2 and a token Dovecot introspected.
        assert len(re.findall(rf"Login: user=<{re.escape(login)}>, method=XOAUTH2", oauth_dovecot.log())) >= 2
        assert provider.refresh_state(issued["refresh_token"]) == "used"
        with stack.app.app_context():
            refresh, access = tokens(stack.app, account_id)
        assert provider.refresh_state(refresh) == "active"
        # No token in any page, URL or Roundcube log.
        for secret in (access, refresh, issued["refresh_token"]):
            assert secret not in page.text and secret not in page.url and secret not in roundcube_logs(stack)
    finally:
        stack.stop()


def test_access_token_refused_by_the_mail_server_is_dropped_and_renewed_next_run(app, provider, oauth_dovecot,
                                                                                 client, auth, admin):
    login, password = new_box(oauth_dovecot)
    oauth_dovecot.append(login, password, "INBOX", message(3, login))
    account = scanner(oauth_server(app, provider, oauth_dovecot), login)
    auth.login("admin")
    connect(client, provider, account.id, login)
    _, access = tokens(app, account.id)
    # Revoked at the provider before its expiry: our stored copy still looks fresh.
    assert requests.post(provider.url + "/revoke", data={"token": access}, timeout=10).status_code == 200

    first = run_scan(account.id)

    assert first.status == "failed" and "Authentication failed" in first.message
    assert access not in first.message
    assert tokens(app, account.id)[1] is None  # dropped, so the next run asks the provider
    second = run_scan(account.id)
    assert second.status == "done" and second.created == 1, second.message
    assert db.session.get(MailAccount, account.id).health == "active"
