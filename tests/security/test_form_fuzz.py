"""Every form, and every list's query string, fed hostile values: never a 500, never a partial write.

The forms are not listed by hand: an administrator's crawl of every GET page
of the URL map collects each POST form (its action, fields and current values),
so a form added later is fuzzed too. Each form gets:

* one request per hostile value with that value in every field at once, and
* one request per field with a hostile value in that field only, the others
  keeping valid values (taken from the matching edit page), so that checks
  behind the first failing field are reached too.

A refusal (4xx, or the form shown again, or a redirect to a page that flashes an
error) must leave every table's row count unchanged, and a form shown again must
say what is wrong. The number of requests is bounded (see the assertion at the end).
"""

from __future__ import annotations

import itertools
import re
import socket
from html.parser import HTMLParser

import pytest
from flask import url_for

from app.extensions import db
from app.models import MailServer
from tests import factories
from tests.security import world
from tests.security.conftest import row_counts

HOSTILE = [
    "A" * 10_000,  # over-long
    "nul\x00byte",  # PostgreSQL refuses NUL in text; SQLite stores it; both must be refused or cleaned
    "esc\x1b[31mape\x07\x08",
    "<script>alert('xss-7c1')</script>",
    '"><img src=x onerror=alert(1)>',
    "'; DROP TABLE users; --",
    "1 OR 1=1",
    "\u202eexe.txt",  # right-to-left override
    "-1",
    "99999999999999999999999",
    "1e309",
    "NaN",
    "999999",  # an id that does not exist
    "../../../etc/passwd",
    "{{7*7}}${7*7}",
    "   ",
    "",
    "😀\u0301\ufeff",
]
# Wrong types: a list where one value is expected.
LIST_VALUE = ["a", "<b>", "999999"]

# Tables a refusal may write to by design: the login throttle and the hand-off/refusal log.
WRITES_ON_REFUSAL = {"login_throttle", "login_throttles", "autologin_events"}
# Actions whose failure is itself recorded: "Scan now" against a dead server leaves a failed run in the history.
# (mail_settings: the settings row is created on first use, whoever reads it first.)
RECORDED_FAILURES = {r"/scanners/\d+/scan$": {"scan_runs", "mail_settings"}}

# Query strings of the list pages.
QUERY_VALUES = ["-1", "0", "99999999999999999999", "abc", "\x00", "<script>", "'--", "A" * 5000, "1e309"]
QUERY_PARAMS = ["page", "q", "mailbox", "direction", "status", "account", "account_id", "date_from", "date_to",
                "since", "until", "remote"]


class _Forms(HTMLParser):
    """POST forms of a page: action, fields (name → current value), select options."""

    def __init__(self):
        super().__init__()
        self.forms: list[dict] = []
        self._form: dict | None = None
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self._form = {"method": (a.get("method") or "get").lower(), "action": a.get("action"),
                          "fields": {}, "options": {}, "kinds": {}}
            self.forms.append(self._form)
            return
        form = self._form
        if form is None:
            return
        name = a.get("name")
        if tag == "input" and name:
            kind = (a.get("type") or "text").lower()
            if kind in ("submit", "button", "image", "reset", "file"):
                return
            form["kinds"][name] = kind
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    form["fields"].setdefault(name, []).append(a.get("value", "y"))
                else:
                    form["fields"].setdefault(name, [])
                form["options"].setdefault(name, []).append(a.get("value", "y"))
            else:
                form["fields"][name] = [a.get("value") or ""]
        elif tag == "select" and name:
            self._select = name
            form["kinds"][name] = "select"
            form["fields"].setdefault(name, [])
            form["options"].setdefault(name, [])
        elif tag == "option" and self._select:
            value = a.get("value", "")
            form["options"][self._select].append(value)
            if "selected" in a:
                form["fields"][self._select].append(value)
        elif tag == "textarea" and name:
            self._textarea = name
            form["kinds"][name] = "textarea"
            form["fields"][name] = [""]

    def handle_data(self, data):
        if self._form is not None and self._textarea:
            self._form["fields"][self._textarea][0] += data

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "select" and self._select:
            form = self._form
            if form is not None and not form["fields"][self._select] and form["options"][self._select]:
                form["fields"][self._select] = [form["options"][self._select][0]]
            self._select = None
        elif tag == "textarea":
            self._textarea = None


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get_pages(app) -> list[str]:
    with app.test_request_context():
        return sorted({url_for(r.endpoint, **{k: 1 for k in r.arguments}) for r in app.url_map.iter_rules()
                       if "GET" in (r.methods or ()) and r.endpoint not in ("static", "auth.login")
                       and not r.endpoint.startswith(("ops.", "bridge."))})


def _crawl_forms(client, pages: list[str]) -> dict[str, dict]:
    forms: dict[str, dict] = {}
    kinds: set[str] = set()
    for page in pages:
        answer = client.get(page)
        parser = _Forms()
        parser.feed(answer.get_data(as_text=True))
        for form in parser.forms:
            action = form["action"] or page
            # One form per kind: /admin/scanners/2/delete is fuzzed as /admin/scanners/1/delete is.
            kind = re.sub(r"/\d+(?=/|$)", "/<id>", action)
            if form["method"] != "post" or action in forms or action == "/logout" or kind in kinds:
                continue
            kinds.add(kind)
            form["page"] = page
            forms[action] = form
    return forms


def _baseline(action: str, forms: dict[str, dict]) -> dict[str, list[str]]:
    """Valid values for a form: its own, or, for a "new" form, those of the matching edit form."""
    fields = {k: list(v) for k, v in forms[action]["fields"].items()}
    if action.endswith("/new") or action.endswith("/filters"):
        edit = re.sub(r"/new$", "/1/edit", action) if action.endswith("/new") else action + "/1/edit"
        for name, values in forms.get(edit, {}).get("fields", {}).items():
            if name in fields and any(values):
                fields[name] = list(values)
    return fields


class _Crash:
    """Stands for a 500: the testing app re-raises the view's exception, kept here for the report."""

    def __init__(self, exc: Exception):
        self.status_code = 500
        self.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}"
        db.session.rollback()

    def __repr__(self) -> str:
        return self.error


def _safely(call):
    try:
        return call()
    except Exception as exc:  # the request crashed: a 500 in production
        return _Crash(exc)


def _post(client, action: str, fields: dict[str, list[str]], token: str):
    data = {k: v for k, v in fields.items() if v}
    token_field = next((k for k in fields if k.endswith("csrf_token")), "csrf_token")
    data[token_field] = token
    if token_field != "csrf_token":
        data["csrf_token"] = token
    return _safely(lambda: client.post(action, data=data))


def _is_refusal(client, answer) -> tuple[bool, str]:
    """(refused?, why) for a POST answer; a redirect is a refusal when the next page flashes an error."""
    if answer.status_code in (301, 302, 303, 307):
        nxt = client.get(answer.headers["Location"])
        assert nxt.status_code < 500, f"after redirect: {nxt.status_code}"
        return b"flash-error" in nxt.data, "redirect+error" if b"flash-error" in nxt.data else "accepted"
    if 400 <= answer.status_code < 500:
        return True, str(answer.status_code)
    text = answer.get_data(as_text=True)
    # A field's error, a flashed message, or a test's result list (Test connection shows its checks).
    said = any(mark in text for mark in ("field-error", "flash-", "status-failed", "test-results"))
    return True, "shown again" + ("" if said else " WITHOUT A MESSAGE")


@pytest.fixture
def w(app):
    built = world.build()
    # Any connection a form makes fails at once on a closed loopback port, instead of waiting on a timeout.
    server = db.session.get(MailServer, built.granted.server_id)
    server.imap_port = _closed_port()
    server.smtp_port = server.imap_port
    db.session.commit()
    app.config["MAIL_CONNECT_TIMEOUT"] = 2
    app.config["QUEUE_MODE"] = "inline"
    return built


def _network_first(action: str) -> int:
    # Forms that connect to the mail server go first, while server 1 still points at a closed port
    # (later fuzzing may legitimately rename or re-point it).
    return 0 if re.search(r"/test|/folders|/scan$|test-login", action) else 1


def test_every_form_refuses_hostile_values_without_500_or_partial_write(app, client, auth, w):
    auth.login("admin")
    token = factories.csrf_from(client.get("/admin/servers/new"))
    forms = _crawl_forms(client, _get_pages(app))
    # Forms a page builds with script or that a crawl with ids = 1 may not show: added by hand.
    forms.setdefault("/admin/scanners/folders", {"fields": {"server_id": ["1"], "login": ["x"],
                                                            "password": ["y"]}, "page": "-"})
    forms.setdefault("/admin/servers/1/delete", {"fields": {}, "page": "-"})
    forms.setdefault("/admin/queues/jobs/scan-1/retry", {"fields": {}, "page": "-"})
    forms.setdefault("/admin/queues/jobs/scan-1/cancel", {"fields": {}, "page": "-"})
    assert len(forms) >= 15, sorted(forms)
    actions = sorted(forms, key=lambda a: (_network_first(a), a.endswith("/delete"), a))
    failures: list[str] = []
    requests = 0
    hostile_cycle = itertools.cycle(HOSTILE + [LIST_VALUE])
    for action in actions:
        base = _baseline(action, forms)
        names = [n for n in base if not n.endswith("csrf_token")]
        attempts: list[tuple[str, dict]] = []
        # A form without fields (a button) is sent once: hostile values would have nowhere to go.
        for value in HOSTILE + [LIST_VALUE] if names else [""]:
            values = value if isinstance(value, list) else [value]
            attempts.append((f"all fields={value!r:.40}", {n: list(values) for n in names}))
        for name in names:
            value = next(hostile_cycle)
            values = value if isinstance(value, list) else [value]
            attempts.append((f"{name}={value!r:.40}", {**base, name: list(values)}))
        for label, fields in attempts:
            before = row_counts()
            answer = _post(client, action, fields, token)
            requests += 1
            if answer.status_code >= 500:
                failures.append(f"POST {action} {label} → {answer.status_code} {answer!r}")
                continue
            if factories.csrf_refused(answer):  # the token was valid: the form's own checks were never reached
                failures.append(f"POST {action} {label} → refused as CSRF, so the fields were never checked")
                continue
            refused, why = _is_refusal(client, answer)
            if "WITHOUT A MESSAGE" in why:
                failures.append(f"POST {action} {label} → form shown again without saying what is wrong")
            if refused:
                after = row_counts()
                allowed = WRITES_ON_REFUSAL.union(*(tables for pattern, tables in RECORDED_FAILURES.items()
                                                    if re.search(pattern, action)))
                changed = {t: (before[t], after[t]) for t in before if before[t] != after[t] and t not in allowed}
                if changed:
                    failures.append(f"POST {action} {label} refused ({why}) but wrote rows: {changed}")
        # Still the administrator: no request logged the session out or broke it.
        assert client.get("/").status_code == 200
    assert not failures, f"{len(failures)} of {requests} hostile requests went wrong:\n" + "\n".join(failures[:60])
    print(f"form fuzz: {len(forms)} forms, {requests} hostile requests")
    assert 200 <= requests <= 600, requests  # bounded, yet every form and field was reached

    # Whatever was accepted is shown escaped on every page, and no page fails on it.
    for page in _get_pages(app):
        answer = client.get(page)
        assert answer.status_code < 500, page
        assert b"<script>alert('xss-7c1')" not in answer.data, page
        assert b"<img src=x onerror" not in answer.data, page


def test_unknown_ids_in_urls_are_404_not_500(app, client, auth, w):
    auth.login("admin")
    token = factories.csrf_from(client.get("/admin/servers/new"))
    wrong = []
    with app.test_request_context():
        rules = [(r.endpoint, r) for r in app.url_map.iter_rules() if r.arguments and r.endpoint != "static"]
        for endpoint, rule in rules:
            for unknown in (999_999, 2**31 + 7):
                url = url_for(endpoint, **{k: unknown for k in rule.arguments})
                for method in ("GET", "POST"):
                    if method not in (rule.methods or ()):
                        continue
                    answer = _safely(lambda url=url, method=method: client.open(
                        url, method=method, data={"csrf_token": token} if method == "POST" else None))
                    if answer.status_code >= 500:
                        wrong.append(f"{method} {url} → {answer.status_code} {answer!r}")
    assert not wrong, "\n".join(wrong)


def test_hostile_job_ids_are_refused(client, auth, w):
    auth.login("admin")
    token = factories.csrf_from(client.get("/admin/servers/new"))
    for job_id in ("..%2F..%2Fx", "A" * 3000, "%00", "scan-1%0d%0aSet-Cookie:x", "<script>", "scan-999999"):
        for verb in ("retry", "cancel"):
            answer = client.post(f"/admin/queues/jobs/{job_id}/{verb}", data={"csrf_token": token})
            assert answer.status_code < 500, (job_id, verb, answer.status_code)
            assert "Set-Cookie: x" not in str(answer.headers)


def test_list_pages_survive_hostile_query_strings(app, client, auth, w):
    auth.login("admin")
    wrong = []
    requests = 0
    pages = [p for p in _get_pages(app) if not re.search(r"/\d+(/|$)", p)]
    for page in pages:
        for param, value in zip(QUERY_PARAMS * 2, itertools.cycle(QUERY_VALUES), strict=False):
            answer = _safely(lambda page=page, param=param, value=value: client.get(
                page, query_string={param: value}))
            requests += 1
            if answer.status_code >= 500:
                wrong.append(f"GET {page}?{param}={value!r:.30} → {answer.status_code} {answer!r}")
    assert requests > 100
    assert not wrong, "\n".join(wrong)


def test_the_login_form_survives_hostile_values(app, client, w):
    # The throttle has its own tests; here every value must reach the form.
    app.config.update(LOGIN_MAX_FAILURES=1000, LOGIN_ACCOUNT_MAX_FAILURES=1000, LOGIN_ADDRESS_MAX_FAILURES=1000)
    token = factories.csrf_from(client.get("/login"))
    for value in HOSTILE + [LIST_VALUE]:
        data = {"username": value, "password": value, "remember": value, "csrf_token": token}
        answer = client.post("/login", data=data)
        # Refused in words on the form itself: a valid CSRF token, and the throttle is out of the way.
        assert answer.status_code == 200, (repr(value)[:40], answer.status_code)
        assert b"Corporate Mailboxes" in answer.data and b"<script>alert('xss-7c1')" not in answer.data
    for nxt in ("//evil.test/", "https://evil.test/", "/\\evil.test", "javascript:alert(1)", "\x00/x"):
        answer = client.post("/login", query_string={"next": nxt},
                             data={"username": "admin", "password": factories.PASSWORD, "csrf_token": token})
        assert answer.status_code == 302
        location = answer.headers["Location"]
        assert "evil.test" not in location and "javascript" not in location, (nxt, location)
        client.post("/logout", data={"csrf_token": factories.csrf_from(client.get("/"))})
        token = factories.csrf_from(client.get("/login"))


OPEN_REDIRECTS = ["//evil.test/", "https://evil.test/", "/\\evil.test", "/\t/evil.test", "/\n/evil.test",
                  "\\\\evil.test", "javascript:alert(1)", "http:evil.test", "/%2F%2Fevil.test", " //evil.test"]


def test_no_next_field_redirects_off_site(client, auth, w):
    auth.login("admin")
    token = factories.csrf_from(client.get("/admin/history"))
    for target in OPEN_REDIRECTS:
        answer = client.post(f"/admin/history/{w.run.id}/stop", data={"csrf_token": token, "next": target})
        assert answer.status_code == 302, (target, answer.status_code)
        location = answer.headers["Location"]
        # Local: a single leading slash and no scheme or host, as the browser will read it.
        cleaned = re.sub(r"[\t\n\r ]", "", location)
        assert cleaned.startswith("/") and not cleaned.startswith(("//", "/\\")), (target, location)


HUGE_PAGES = ["400000000000000000", "99999999999999999999", "9223372036854775808", "-9223372036854775809",
              "0", "-1", "1e309", "abc"]


def test_every_page_clamps_huge_page_numbers(app, client, auth, w):
    """?page= of any size on every page without id (every paginated list among them) is never a 500."""
    auth.login("admin")
    pages = [p for p in _get_pages(app) if not re.search(r"/\d+(/|$)", p)]
    assert {"/admin/history", "/admin/audit", "/admin/handoffs", "/records/emails", "/records/tickets"} <= set(pages)
    wrong = []
    for page in pages + [f"/records/contacts/{w.contact.id}", f"/records/tickets/{w.ticket.id}"]:
        for value in HUGE_PAGES:
            answer = _safely(lambda page=page, value=value: client.get(page, query_string={"page": value}))
            if answer.status_code >= 500:
                wrong.append(f"GET {page}?page={value} → {answer.status_code} {answer!r}")
    assert not wrong, "\n".join(wrong)
