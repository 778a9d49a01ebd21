"""Query counts of the hot request paths: constant, whatever the number of rows.

The hand-off (POST /bridge/open/<id>) is what 50 people click at once; the
download history and the e-mail list are the pages that grow to 100,000 rows.
A page that makes one query per row (N+1) or a hand-off that does work per
mailbox shows up here as a count that grows with the data; timings live in
bench/, never in tests.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

from sqlalchemy import event

from app.extensions import db
from app.models import ScanRun
from app.models.base import utcnow
from tests import factories

# The hand-off's work: the user (session), the mailbox, its grant, the token insert, the event,
# the count of its recent tokens (the minting limit), the commit (measured: 6 statements); the bound leaves a
# little room.
HANDOFF_MAX_QUERIES = 7


@contextlib.contextmanager
def counting():
    """Count the SQL statements sent to the database inside the block (BEGIN/COMMIT excluded)."""
    seen: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    engine = db.engine
    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)


def _handoff_queries(client, account_id) -> list[str]:
    page = client.get("/mailbox")
    token = factories.csrf_from(page)
    with counting() as seen:
        response = client.post(f"/bridge/open/{account_id}", data={"csrf_token": token})
    assert factories.handoff_token(response), response.data[:300]
    return list(seen)


def test_handoff_query_count_is_small_and_constant(app, client, auth):
    """Opening a mailbox costs the same few queries with 1 or 20 granted mailboxes."""
    user = factories.user("carol")
    first = factories.mail_account("Box 0", "box0@corp.test")
    factories.grant(user, first)
    auth.login("carol")
    few = _handoff_queries(client, first.id)
    for i in range(1, 20):
        factories.grant(user, factories.mail_account(f"Box {i}", f"box{i}@corp.test"))
    many = _handoff_queries(client, first.id)
    assert len(few) <= HANDOFF_MAX_QUERIES, few
    assert len(many) == len(few), (few, many)


def _page_queries(client, path) -> int:
    client.get(path)  # first request warms caches that are not per-request work
    with counting() as seen:
        response = client.get(path)
    assert response.status_code == 200
    return len(seen)


def test_history_page_has_no_query_per_row(app, client, auth):
    """The download history makes as many queries for 60 runs (a full page + 1) as for 2."""
    factories.user("root", admin=True)
    account = factories.mail_account()
    now = utcnow()

    def runs(n, start):
        db.session.add_all([ScanRun(account_id=account.id, started_at=now - timedelta(minutes=start + i),
                                    finished_at=now, status="done", trigger="schedule", downloaded=i,
                                    error_details="[]") for i in range(n)])
        db.session.commit()

    runs(2, 0)
    auth.login("root")
    few = _page_queries(client, "/admin/history")
    runs(58, 10)
    many = _page_queries(client, "/admin/history")
    assert many == few


def test_email_list_has_no_query_per_row(app, client, auth):
    """The e-mail list makes as many queries for 60 e-mails (a full page + 1) as for 2."""
    factories.user("root", admin=True)
    account = factories.mail_account()
    for _ in range(2):
        factories.email(account)
    auth.login("root")
    few = _page_queries(client, "/records/emails")
    for _ in range(58):
        factories.email(account, commit=False)
    db.session.commit()
    many = _page_queries(client, "/records/emails")
    assert many == few
