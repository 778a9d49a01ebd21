"""A small but real OAuth 2.0 authorization server for the tests and the demo.

It runs as an HTTP server (werkzeug, in a thread, on a loopback port) and speaks
the protocol for real: the app under test talks to it with Authlib over HTTP,
and Dovecot's ``oauth2`` passdb asks its ``/introspect`` endpoint whether the
access token of an XOAUTH2 login is good.

- ``GET /authorize``: the authorization code flow with PKCE (S256 required). It
  signs in ``approve_as`` without a page (or answers ``deny`` as the error), and
  redirects back to ``redirect_uri`` with ``code`` and ``state``.
- ``POST /token``: ``authorization_code`` (checks the client, the redirect URI
  and the PKCE verifier; a code works once) and ``refresh_token`` (the refresh
  token is rotated: the old one is refused with ``invalid_grant`` afterwards).
  Clients authenticate with ``client_secret_post`` or ``client_secret_basic``.
- ``POST /introspect`` (RFC 7662): ``{"active": true, "username": ...}`` for a
  live access token, ``{"active": false}`` otherwise. Also takes GET with a
  Bearer header or ``?token=`` (Dovecot's other introspection modes).
- ``POST /revoke`` (RFC 7009): revoking a refresh token ends its whole grant.

Tests drive it directly too: ``revoke_user``, ``expire_access_tokens``,
``calls`` (every request, without tokens) and ``refresh_state(token)``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from html import escape
from urllib.parse import urlencode, urlsplit, urlunsplit

from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

CLIENT_ID = "cm-test-client"
CLIENT_SECRET = "cm-test-client-secret"


class _QuietHandler(WSGIRequestHandler):
    """No access log lines on the test output."""

    def log_request(self, *args, **kwargs) -> None:
        pass


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class _Grant:
    user: str
    client_id: str
    scope: str
    revoked: bool = False


@dataclass
class _Refresh:
    grant: _Grant
    state: str = "active"  # active / used (rotated away) / revoked


@dataclass
class _Access:
    grant: _Grant
    expires_at: float
    revoked: bool = False


@dataclass
class OAuthProvider:
    """The authorization server; ``start()`` it, read ``url``, ``stop()`` it."""

    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    approve_as: str | None = None
    deny: str | None = None  # e.g. "access_denied": /authorize answers this error instead of a code
    # True: GET /authorize shows a consent page (as real providers do) whose Allow/Deny buttons
    # POST back to /authorize; the browser test clicks them. False: it approves ``approve_as`` at once.
    consent_page: bool = False
    access_ttl: int = 3600
    rotate: bool = True
    token_delay: float = 0.0  # seconds /token takes (lets a test hold two refreshes in flight at once)
    port: int = 0
    calls: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._codes: dict[str, dict] = {}
        self._refresh: dict[str, _Refresh] = {}
        self._access: dict[str, _Access] = {}
        self._server = None
        self._thread = None

    # ------------------------------------------------------------ life cycle

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def authorize_url(self) -> str:
        return self.url + "/authorize"

    @property
    def token_url(self) -> str:
        return self.url + "/token"

    @property
    def introspect_url(self) -> str:
        return self.url + "/introspect"

    def start(self) -> OAuthProvider:
        if not self.port:
            self.port = free_port()
        self._server = make_server("127.0.0.1", self.port, self._wsgi, threaded=True,
                                   request_handler=_QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="oauth-provider", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # ------------------------------------------------------------ test controls

    def issue(self, user: str, scope: str = "mail") -> dict:
        """Tokens for ``user`` without the browser flow (as if they had signed in)."""
        with self._lock:
            return self._issue(_Grant(user, self.client_id, scope))

    def revoke_user(self, user: str) -> None:
        """Revoke every grant of ``user`` (as an administrator at the provider would)."""
        with self._lock:
            for entry in list(self._refresh.values()) + list(self._access.values()):
                if entry.grant.user == user:
                    entry.grant.revoked = True

    def expire_access_tokens(self, user: str | None = None) -> None:
        """Make the access tokens (of ``user``) expired now."""
        with self._lock:
            for entry in self._access.values():
                if user is None or entry.grant.user == user:
                    entry.expires_at = time.time() - 1

    def refresh_state(self, token: str) -> str:
        """"active", "used", "revoked" or "unknown": what the provider thinks of a refresh token."""
        with self._lock:
            entry = self._refresh.get(token)
            if entry is None:
                return "unknown"
            return "revoked" if entry.grant.revoked else entry.state

    def access_active(self, token: str) -> bool:
        with self._lock:
            return self._active_access(token) is not None

    def count(self, path: str, **match) -> int:
        """How many requests to ``path`` (with these form values, e.g. grant_type) were made."""
        return sum(1 for c in self.calls if c["path"] == path and all(c.get(k) == v for k, v in match.items()))

    # ------------------------------------------------------------ the protocol

    def _issue(self, grant: _Grant) -> dict:
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(40)
        self._access[access] = _Access(grant, time.time() + self.access_ttl)
        self._refresh[refresh] = _Refresh(grant)
        return {"access_token": access, "token_type": "Bearer", "expires_in": self.access_ttl,
                "refresh_token": refresh, "scope": grant.scope}

    def _active_access(self, token: str | None) -> _Access | None:
        entry = self._access.get(token or "")
        if entry is None or entry.revoked or entry.grant.revoked or entry.expires_at <= time.time():
            return None
        return entry

    def _wsgi(self, environ, start_response):
        request = Request(environ)
        form = request.form if request.method == "POST" else request.args
        # Recorded without any token or secret, for the tests' assertions.
        self.calls.append({"path": request.path, "method": request.method, "grant_type": form.get("grant_type"),
                           "user_agent": request.headers.get("User-Agent", "")})
        handler = {"/authorize": self._authorize, "/token": self._token, "/introspect": self._introspect,
                   "/revoke": self._revoke}.get(request.path)
        response = handler(request) if handler else _json({"error": "not_found"}, 404)
        return response(environ, start_response)

    def _authorize(self, request: Request) -> Response:
        args = request.args
        redirect_uri, state = args.get("redirect_uri", ""), args.get("state")
        if args.get("client_id") != self.client_id or not redirect_uri.startswith(("http://", "https://")):
            # Never redirect to an unverified place (RFC 6749 §4.1.2.1): answer here.
            return Response("unknown client or bad redirect_uri", 400)
        if args.get("response_type") != "code":
            return _redirect(redirect_uri, error="unsupported_response_type", state=state)
        if not args.get("code_challenge") or args.get("code_challenge_method") != "S256":
            return _redirect(redirect_uri, error="invalid_request", state=state,
                             error_description="PKCE with S256 is required")
        if self.consent_page and request.method == "GET":
            return _consent_page(args)
        decision = request.form.get("decision") if request.method == "POST" else None
        if self.deny or decision == "deny":
            return _redirect(redirect_uri, error=self.deny or "access_denied", state=state,
                             error_description="The user declined to grant access")
        if decision == "allow":
            self.approve_as = request.form.get("user") or None
        if not self.approve_as:
            return _redirect(redirect_uri, error="login_required", state=state,
                             error_description="No user is signed in")
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = {"client_id": self.client_id, "redirect_uri": redirect_uri,
                                 "challenge": args["code_challenge"], "user": self.approve_as,
                                 "scope": args.get("scope", ""), "expires": time.time() + 300,
                                 "login_hint": args.get("login_hint")}
        return _redirect(redirect_uri, code=code, state=state)

    def _client_ok(self, request: Request) -> bool:
        auth = request.authorization
        if auth is not None and auth.type == "basic":
            return auth.username == self.client_id and auth.password == self.client_secret
        return (request.form.get("client_id") == self.client_id
                and request.form.get("client_secret") == self.client_secret)

    def _token(self, request: Request) -> Response:
        if request.method != "POST":
            return _json({"error": "invalid_request", "error_description": "POST only"}, 405)
        if not self._client_ok(request):
            return _json({"error": "invalid_client", "error_description": "Client authentication failed"}, 401)
        form = request.form
        grant_type = form.get("grant_type")
        if self.token_delay:
            time.sleep(self.token_delay)
        with self._lock:
            if grant_type == "authorization_code":
                entry = self._codes.pop(form.get("code", ""), None)  # a code works once
                if entry is None or entry["expires"] < time.time():
                    return _json({"error": "invalid_grant", "error_description": "Unknown or used code"}, 400)
                if form.get("redirect_uri") != entry["redirect_uri"]:
                    return _json({"error": "invalid_grant", "error_description": "redirect_uri mismatch"}, 400)
                verifier = form.get("code_verifier", "")
                digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
                if not verifier or not secrets.compare_digest(digest, entry["challenge"]):
                    return _json({"error": "invalid_grant", "error_description": "PKCE verification failed"}, 400)
                return _json(self._issue(_Grant(entry["user"], self.client_id, entry["scope"])))
            if grant_type == "refresh_token":
                entry = self._refresh.get(form.get("refresh_token", ""))
                if entry is None or entry.grant.revoked or entry.state != "active":
                    why = ("Unknown refresh token" if entry is None else
                           "Refresh token revoked" if entry.grant.revoked or entry.state == "revoked" else
                           "Refresh token already used (it was rotated)")
                    return _json({"error": "invalid_grant", "error_description": why}, 400)
                access = secrets.token_urlsafe(32)
                self._access[access] = _Access(entry.grant, time.time() + self.access_ttl)
                answer = {"access_token": access, "token_type": "Bearer", "expires_in": self.access_ttl,
                          "scope": entry.grant.scope}
                if self.rotate:
                    entry.state = "used"
                    new = secrets.token_urlsafe(40)
                    self._refresh[new] = _Refresh(entry.grant)
                    answer["refresh_token"] = new
                return _json(answer)
        return _json({"error": "unsupported_grant_type"}, 400)

    def _introspect(self, request: Request) -> Response:
        token = request.form.get("token") if request.method == "POST" else request.args.get("token")
        auth = request.headers.get("Authorization", "")
        if not token and auth.lower().startswith("bearer "):
            token = auth[7:].strip()
        with self._lock:
            entry = self._active_access(token)
            if entry is None:
                return _json({"active": False})
            return _json({"active": True, "username": entry.grant.user, "scope": entry.grant.scope,
                          "client_id": entry.grant.client_id, "exp": int(entry.expires_at)})

    def _revoke(self, request: Request) -> Response:
        token = request.form.get("token", "")
        with self._lock:
            if token in self._refresh:
                self._refresh[token].grant.revoked = True
            elif token in self._access:
                self._access[token].revoked = True
        return Response("", 200)  # RFC 7009: 200 even for an unknown token


def _consent_page(args) -> Response:
    """The provider's sign-in and consent page: who signs in, and Allow or Deny (posted back to /authorize)."""
    hint = escape(args.get("login_hint", ""))
    page = (f"<!doctype html><html><head><title>Test provider: sign in</title></head><body>"
            f"<h1>Sign in to the test provider</h1>"
            f'<form method="post" action="/authorize?{escape(urlencode(list(args.items(multi=True))))}">'
            f'<label>Account <input name="user" value="{hint}"></label>'
            f"<p>Corporate Mailboxes asks to read and send mail as this account "
            f"(scopes: {escape(args.get('scope', ''))}).</p>"
            f'<button name="decision" value="allow" id="allow">Allow</button> '
            f'<button name="decision" value="deny" id="deny">Deny</button></form></body></html>')
    return Response(page, 200, content_type="text/html; charset=utf-8")


def _json(data: dict, status: int = 200) -> Response:
    return Response(json.dumps(data), status, content_type="application/json",
                    headers={"Cache-Control": "no-store"})


def _redirect(uri: str, **params) -> Response:
    parts = urlsplit(uri)
    query = "&".join(p for p in (parts.query, urlencode({k: v for k, v in params.items() if v is not None})) if p)
    return Response("", 302, headers={"Location": urlunsplit(parts._replace(query=query))})


if __name__ == "__main__":  # the demo: python -m tests.oauth_provider [PORT] [USER]
    import sys

    provider = OAuthProvider(port=int(sys.argv[1]) if len(sys.argv) > 1 else 18080,
                             approve_as=sys.argv[2] if len(sys.argv) > 2 else "demo@corp.test").start()
    print(f"OAuth provider on {provider.url} (client id {provider.client_id}, approves {provider.approve_as})")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        provider.stop()
