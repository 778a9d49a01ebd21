"""Every admin route, found in the URL map: anonymous → login, ordinary user → 403.

The routes are not listed by hand, so an admin page added later is checked
too. URL parameters are filled with 1; POSTs carry a valid CSRF token so the
request reaches the role check instead of stopping at the CSRF check.
"""

from __future__ import annotations

from flask import url_for

from tests import factories


def _admin_routes(app) -> list[tuple[str, str, str]]:
    """(endpoint, method, url) for every admin rule and each of GET/POST it accepts."""
    routes = []
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            if not rule.endpoint.startswith("admin."):
                continue
            url = url_for(rule.endpoint, **{arg: 1 for arg in rule.arguments})
            for method in ("GET", "POST"):
                if method in (rule.methods or ()):
                    routes.append((rule.endpoint, method, url))
    return routes


def _request(client, method: str, url: str, token: str):
    if method == "GET":
        return client.get(url)
    return client.post(url, data={"csrf_token": token})


def test_the_walk_sees_the_admin_pages(app):
    endpoints = {endpoint for endpoint, _, _ in _admin_routes(app)}
    # The walk must find routes at all, or it would prove nothing.
    assert {"admin.servers", "admin.mail_config"} <= endpoints
    assert any(method == "POST" for _, method, _ in _admin_routes(app))


def test_anonymous_visitors_are_sent_to_the_login_page(app, client):
    token = factories.csrf_from(client.get("/login"))
    wrong = []
    for endpoint, method, url in _admin_routes(app):
        response = _request(client, method, url, token)
        location = response.headers.get("Location", "")
        if response.status_code != 302 or "/login" not in location:
            wrong.append(f"{method} {url} ({endpoint}) → {response.status_code} {location}")
    assert not wrong, "admin routes open to anonymous visitors:\n" + "\n".join(wrong)


def test_ordinary_users_get_403(app, client, auth, user):
    auth.login("alice")
    token = factories.csrf_from(client.get("/"))
    wrong = []
    for endpoint, method, url in _admin_routes(app):
        response = _request(client, method, url, token)
        if response.status_code != 403:
            wrong.append(f"{method} {url} ({endpoint}) → {response.status_code}")
    assert not wrong, "admin routes that do not answer 403 to an ordinary user:\n" + "\n".join(wrong)
    # Still logged in as alice: the walk did not log her out along the way (which would hide 403s).
    assert b"Alice" in client.get("/").data


def test_the_menu_offers_mail_servers_and_configuration_to_admins_only(client, auth, admin, user):
    auth.login("admin")
    page = client.get("/").data.decode()
    assert 'href="/admin/servers">Mail servers</a>' in page
    assert 'href="/admin/mail-config">Mail configuration</a>' in page
    auth.logout()
    auth.login("alice")
    page = client.get("/").data.decode()
    assert "/admin/servers" not in page and "/admin/mail-config" not in page
