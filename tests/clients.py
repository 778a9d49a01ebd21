"""A test client that behaves like a separate browser against a separate request.

Flask's test client reuses the app context that is current when it sends a
request, and with it ``g``: flask-login keeps the user it loaded there
(``g._login_user``), so a second client in the same test would be served as the
first one's user. Each request of a :class:`Browser` runs in an app context of
its own, as every request does in production.
"""

from __future__ import annotations

from tests import factories


class Browser:
    """One browser (its own cookie jar) whose every request gets a fresh app context."""

    def __init__(self, app):
        self.app, self.client = app, app.test_client()

    def get(self, url, **kwargs):
        with self.app.app_context():
            return self.client.get(url, **kwargs)

    def post(self, url, **kwargs):
        with self.app.app_context():
            return self.client.post(url, **kwargs)

    def get_cookie(self, name, **kwargs):
        return self.client.get_cookie(name, **kwargs)

    def set_cookie(self, name, value, **kwargs):
        self.client.set_cookie(name, value, **kwargs)

    def login(self, username: str, password: str = factories.PASSWORD, remember: bool = False):
        """Log in through the form; returns the answer (302 on success)."""
        token = factories.csrf_from(self.get("/login"))
        data = {"username": username, "password": password, "csrf_token": token}
        if remember:
            data["remember"] = "y"
        return self.post("/login", data=data)

    def logout(self):
        return self.post("/logout", data={"csrf_token": factories.csrf_from(self.get("/"))})
