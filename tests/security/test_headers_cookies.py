"""Session cookies and security headers, on pages, downloads, errors and the e-mail body frame."""

from __future__ import annotations

import pytest

from app import create_app
from app.extensions import db
from tests import factories
from tests.security import world


@pytest.fixture
def w(app):
    return world.build()


def _cookie(response, name: str) -> str:
    """The Set-Cookie header for ``name`` (lower-cased), or ''."""
    for value in response.headers.getlist("Set-Cookie"):
        if value.startswith(name + "="):
            return value.lower()
    return ""


def _production_app(tmp_path):
    return create_app("production", SECRET_KEY="s" * 40, MAIL_ENCRYPTION_KEY=fernet_key(),
                      BRIDGE_SECRET="b" * 32, SQLALCHEMY_DATABASE_URI="sqlite://",
                      INSTANCE_PATH=str(tmp_path), LOG_FORMAT="text")


def fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def test_production_cookies_are_secure_httponly_and_samesite(tmp_path):
    app = _production_app(tmp_path)
    with app.app_context():
        db.create_all()
        factories.user(username="bob")
        client = app.test_client()
        https = {"base_url": "https://cm.example.test"}
        page = client.get("/login", **https)
        # Over HTTPS flask-wtf also wants a same-origin Referer (WTF_CSRF_SSL_STRICT).
        form = {"username": "bob", "password": factories.PASSWORD, "remember": "y",
                "csrf_token": factories.csrf_from(page)}
        answer = client.post("/login", **https, headers={"Referer": "https://cm.example.test/login"}, data=form)
        assert answer.status_code == 302
        session = _cookie(answer, "session") or _cookie(page, "session")
        assert session, "no session cookie set"
        for flag in ("secure", "httponly", "samesite=lax"):
            assert flag in session, f"session cookie lacks {flag}: {session}"
        remember = _cookie(answer, "remember_token")
        assert remember and "secure" in remember and "httponly" in remember and "samesite=lax" in remember, remember
        db.session.remove()
        db.drop_all()


def test_production_refuses_to_start_without_its_secrets(tmp_path):
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app("production", SECRET_KEY=None, MAIL_ENCRYPTION_KEY=fernet_key(), BRIDGE_SECRET="b" * 32,
                   SQLALCHEMY_DATABASE_URI="sqlite://", INSTANCE_PATH=str(tmp_path))


def test_development_cookies_are_httponly_and_samesite(client, auth, w):
    answer = auth.login("alice")
    cookie = _cookie(answer, "session")
    assert "httponly" in cookie and "samesite=lax" in cookie


HTML_PAGES = ["/", "/login", "/records/emails", "/records/contacts", "/admin/servers", "/admin/mail-config",
              "/records/emails/{granted}", "/nowhere-404"]


def test_html_pages_carry_csp_frame_and_nosniff_headers(client, auth, w):
    auth.login("admin")
    for url in HTML_PAGES:
        answer = client.get(url.format(granted=w.granted_email.id))
        assert answer.mimetype == "text/html", url
        csp = answer.headers.get("Content-Security-Policy", "")
        assert "default-src 'self'" in csp and "object-src 'none'" in csp and "base-uri" in csp, url
        assert "script-src" not in csp or "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0], url
        assert answer.headers.get("X-Frame-Options") == "DENY", url
        assert answer.headers.get("X-Content-Type-Options") == "nosniff", url


def test_error_pages_for_other_users_carry_the_headers_too(client, auth, w):
    auth.login("alice")
    for url, code in (("/admin/servers", 403), (f"/records/emails/{w.secret_email.id}", 404)):
        answer = client.get(url)
        assert answer.status_code == code, url
        assert answer.headers.get("X-Frame-Options") == "DENY"
        assert answer.headers.get("X-Content-Type-Options") == "nosniff"
        assert "Content-Security-Policy" in answer.headers


def test_downloads_are_attachments_sandboxed_and_not_sniffed(client, auth, w):
    auth.login("admin")
    for url in (f"/records/emails/{w.granted_email.id}/attachments/{w.granted_attachment_id}",
                f"/records/emails/{w.granted_email.id}/original.eml"):
        answer = client.get(url)
        assert answer.status_code == 200
        assert answer.headers["Content-Disposition"].startswith("attachment;"), url
        assert answer.headers.get("X-Content-Type-Options") == "nosniff"
        assert "sandbox" in answer.headers["Content-Security-Policy"]
        assert "default-src 'none'" in answer.headers["Content-Security-Policy"]
        assert answer.headers.get("X-Frame-Options") == "DENY"
        assert "no-store" in answer.headers.get("Cache-Control", "")


def test_the_body_frame_has_a_stricter_policy(client, auth, w):
    auth.login("admin")
    answer = client.get(f"/records/emails/{w.granted_email.id}/body")
    csp = answer.headers["Content-Security-Policy"]
    directives = {d.split()[0]: d.split()[1:] for d in (x.strip() for x in csp.split(";")) if d}
    assert directives["default-src"] == ["'none'"]  # no script, no connect, no form, no frame
    assert "script-src" not in directives
    assert directives["img-src"] == ["'self'", "data:"]  # remote images blocked by default
    assert directives["frame-ancestors"] == ["'self'"]
    assert answer.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert answer.headers["Referrer-Policy"] == "no-referrer"
    assert answer.headers.get("X-Content-Type-Options") == "nosniff"
    remote = client.get(f"/records/emails/{w.granted_email.id}/body?remote=1").headers["Content-Security-Policy"]
    assert "img-src * data:" in remote and "default-src 'none'" in remote and "script-src" not in remote
