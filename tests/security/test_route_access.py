"""Every route of the URL map has an explicit role here, and answers as that role says.

A route added without an entry in ACCESS fails ``test_every_route_has_an_entry``;
an entry for a route that no longer exists fails too, so the table stays the
truth. URL parameters are filled with 1, which names a real row (tests/security/world.py).
POSTs carry a valid CSRF token so that the request reaches the role check rather
than stopping at the CSRF check (CSRF has its own test below).

This generalizes the former tests/unit/test_admin_access.py (admin.* only).
"""

from __future__ import annotations

import pytest
from flask import url_for

from tests import factories
from tests.security import world

PUBLIC = "public"  # anyone: the login page, the health check
USER = "user"  # any logged-in user; anonymous visitors go to the login page
ADMIN = "admin"  # administrators; ordinary users get 403, anonymous visitors the login page
TOKEN = "token"  # no session: a bearer token from the configuration (404 when unset, 401 when wrong)
SECRET = "secret"  # server-to-server: the bridge's shared secret header (401 without it)

ACCESS: dict[str, str] = {
    "auth.login": PUBLIC,
    "auth.logout": USER,
    "ops.healthz": PUBLIC,
    "ops.metrics": TOKEN,
    "bridge.redeem": SECRET,
    "bridge.open_mailbox": USER,  # plus the grant check (403 without a grant), tested in test_autologin
    "bridge.bind": USER,  # plus this browser's hand-off cookie and the token's own user (test_autologin_binding)
    "bridge.unread": USER,
    "bridge.write_email": USER,  # plus the grant and the record's access (test_write_from_records)
    "bridge.open_in_webmail": USER,  # plus the e-mail rule and the grant (test_write_from_records)
    "desk.index": USER,
    "desk.mailbox": USER,
    "records.contacts": USER,
    "records.contact_detail": USER,
    "records.contact_edit": USER,
    "records.contact_new": USER,
    "records.organizations": USER,
    "records.organization_detail": USER,
    "records.organization_edit": USER,
    "records.organization_new": USER,
    "records.leads": USER,
    "records.lead_detail": USER,
    "records.lead_edit": USER,
    "records.lead_new": USER,
    "records.tickets": USER,
    "records.ticket_detail": USER,
    "records.ticket_status": USER,
    "records.contact_delete": ADMIN,
    "records.organization_delete": ADMIN,
    "records.lead_delete": ADMIN,
    "records.import_upload": ADMIN,
    "records.import_detail": ADMIN,
    "records.import_start": ADMIN,
    "records.import_cancel": ADMIN,
    "records.import_progress": ADMIN,
    "records.users": USER,
    "records.user_detail": USER,
    "records.emails": USER,  # plus the per-mailbox rule, tested in test_object_access
    "records.email_detail": USER,
    "records.email_body": USER,
    "records.email_attachment": USER,
    "records.email_original": USER,
    "admin.audit": ADMIN,
    "admin.autologin": ADMIN,
    "admin.autologin_save": ADMIN,
    "admin.handoffs": ADMIN,
    "admin.history": ADMIN,
    "admin.history_stop": ADMIN,
    "admin.mail_config": ADMIN,
    "admin.mail_filter_delete": ADMIN,
    "admin.mail_filter_edit": ADMIN,
    "admin.mail_filter_new": ADMIN,
    "admin.mail_filter_toggle": ADMIN,
    "admin.oauth_callback": ADMIN,
    "admin.oauth_connect": ADMIN,
    "admin.queue_cancel": ADMIN,
    "admin.queue_retry": ADMIN,
    "admin.queues": ADMIN,
    "admin.scan_progress": ADMIN,
    "admin.scanner_delete": ADMIN,
    "admin.scanner_disable": ADMIN,
    "admin.scanner_edit": ADMIN,
    "admin.scanner_enable": ADMIN,
    "admin.scanner_folders": ADMIN,
    "admin.scanner_new": ADMIN,
    "admin.scanner_scan_now": ADMIN,
    "admin.scanner_test_login": ADMIN,
    "admin.scanners": ADMIN,
    "admin.server_delete": ADMIN,
    "admin.server_edit": ADMIN,
    "admin.server_new": ADMIN,
    "admin.server_test": ADMIN,
    "admin.servers": ADMIN,
    "admin.watch": ADMIN,
    "admin.users": ADMIN,
    "admin.user_new": ADMIN,
    "admin.user_edit": ADMIN,
    "admin.user_password": ADMIN,
    "admin.user_disable": ADMIN,
    "admin.user_enable": ADMIN,
    "admin.user_promote": ADMIN,
    "admin.user_demote": ADMIN,
}

# State-changing routes that do not take a CSRF token, each with the reason.
CSRF_EXEMPT = {
    "bridge.redeem": "server-to-server from the Roundcube plugin; the shared secret authenticates it",
}

STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}


def routes(app, methods=("GET", "POST")) -> list[tuple[str, str, str]]:
    """(endpoint, method, url) for every rule but static, each method it accepts among ``methods``."""
    found = []
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            if rule.endpoint == "static":
                continue
            url = url_for(rule.endpoint, **{arg: 1 for arg in rule.arguments})
            for method in methods:
                if method in (rule.methods or ()):
                    found.append((rule.endpoint, method, url))
    return sorted(found)


def send(client, method: str, url: str, token: str | None):
    """One request; a POST carries ``token`` as its CSRF token when given."""
    data = {"csrf_token": token} if token else {}
    return client.open(url, method=method, data=data if method != "GET" else None)


def is_login_redirect(response) -> bool:
    return response.status_code == 302 and "/login" in response.headers.get("Location", "")


@pytest.fixture
def w(app):
    return world.build()


def test_every_route_has_an_entry(app):
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()} - {"static"}
    missing = sorted(endpoints - set(ACCESS))
    stale = sorted(set(ACCESS) - endpoints)
    assert not missing, "routes without an access entry in tests/security/test_route_access.py: " + ", ".join(missing)
    assert not stale, "access entries for routes that no longer exist: " + ", ".join(stale)
    # The walk must see routes of every kind, or it would prove nothing.
    assert {ACCESS[e] for e, _, _ in routes(app)} == {PUBLIC, USER, ADMIN, TOKEN, SECRET}


def test_anonymous_visitors(app, client, w):
    token = factories.csrf_from(client.get("/login"))
    wrong = []
    for endpoint, method, url in routes(app):
        role = ACCESS[endpoint]
        response = send(client, method, url, token)
        code = response.status_code
        if role in (USER, ADMIN):
            ok = is_login_redirect(response)
        elif role == TOKEN:
            ok = code == 404  # no METRICS_TOKEN configured: /metrics does not exist
        elif role == SECRET:
            ok = code == 401
        else:
            ok = code < 500 and not is_login_redirect(response)
        if not ok:
            wrong.append(f"{method} {url} ({endpoint}, {role}) → {code} {response.headers.get('Location', '')}")
    assert not wrong, "anonymous requests not answered as their role says:\n" + "\n".join(wrong)


def test_metrics_with_a_token_configured_refuses_anonymous_callers(app, client):
    app.config["METRICS_TOKEN"] = "metrics-token-for-test"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer metrics-token-for-test"}).status_code == 200


def test_ordinary_users(app, client, auth, w):
    auth.login("alice")
    token = factories.csrf_from(client.get("/"))
    wrong = []
    # Logout last: it ends the session the walk depends on.
    walk = sorted(routes(app), key=lambda r: r[0] == "auth.logout")
    for endpoint, method, url in walk:
        role = ACCESS[endpoint]
        response = send(client, method, url, token)
        code = response.status_code
        if role == ADMIN:
            ok = code == 403
        elif role == USER:
            # Her own pages: never the role's 403 nor a trip to the login page (logout excepted).
            ok = code < 500 and code != 403 and (endpoint == "auth.logout" or not is_login_redirect(response))
        elif role == TOKEN:
            ok = code == 404  # a session is not a token (and none is configured)
        elif role == SECRET:
            ok = code == 401  # a session is not the shared secret
        else:
            ok = code < 500
        if not ok:
            wrong.append(f"{method} {url} ({endpoint}, {role}) → {code} {response.headers.get('Location', '')}")
    assert not wrong, "requests of an ordinary user not answered as their role says:\n" + "\n".join(wrong)


def test_administrators_reach_every_admin_and_user_page(app, client, auth, w):
    auth.login("admin")
    wrong = []
    for endpoint, _method, url in routes(app, methods=("GET",)):
        if ACCESS[endpoint] not in (USER, ADMIN):
            continue
        response = client.get(url)
        if response.status_code >= 500 or response.status_code in (401, 403) or is_login_redirect(response):
            wrong.append(f"GET {url} ({endpoint}) → {response.status_code}")
    assert not wrong, "pages an administrator cannot open:\n" + "\n".join(wrong)


def test_every_state_changing_route_refuses_a_request_without_csrf_token(app, client, auth, w):
    assert app.config.get("WTF_CSRF_ENABLED", True), "the suite must run with CSRF on"
    auth.login("admin")
    wrong = []
    checked = 0
    for endpoint, method, url in routes(app, methods=tuple(STATE_CHANGING)):
        if endpoint in CSRF_EXEMPT:
            continue
        checked += 1
        response = client.open(url, method=method, data={})
        if not factories.csrf_refused(response):
            wrong.append(f"{method} {url} ({endpoint}) → {response.status_code}")
        # A token from another session (or a made-up one) is no better than none.
        response = client.open(url, method=method, data={"csrf_token": "forged.token.value"})
        if not factories.csrf_refused(response):
            wrong.append(f"{method} {url} ({endpoint}) with a forged token → {response.status_code}")
    assert checked > 30
    assert not wrong, "state-changing requests accepted without a valid CSRF token:\n" + "\n".join(wrong)
    # Still logged in: no request above went through (a logout would have).
    assert b"Admin" in client.get("/").data


def test_csrf_exemptions_are_exactly_the_listed_ones(app):
    from app.extensions import csrf

    exempt_views = set(csrf._exempt_views)
    exempt_endpoints = {endpoint for endpoint, view in app.view_functions.items()
                        if f"{view.__module__}.{view.__name__}" in exempt_views}
    exempt_blueprints = set(csrf._exempt_blueprints)
    assert exempt_endpoints == set(CSRF_EXEMPT)
    assert not exempt_blueprints


def test_exempt_routes_still_refuse_callers_without_their_secret(client):
    answer = client.post("/bridge/redeem", json={"token": "A" * 43})
    assert answer.status_code == 401
