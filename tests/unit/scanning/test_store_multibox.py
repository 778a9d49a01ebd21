"""One message, many mailboxes: stored once, linked to each mailbox it reached (SQLite and PostgreSQL)."""

from __future__ import annotations

import dataclasses
import threading
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Email, EmailMailbox, MailSettings, Ticket
from app.scanner.types import BatchItem, ParsedMessage, RunCounters
from app.scanning.chunks import _store_one, is_conflict
from app.scanning.store.batch import load_context, store_batch
from tests import factories
from tests.scan_helpers import database_app
from tests.unit.scanning.store_helpers import links_of, make_account, msg, store


def delivered(message: ParsedMessage, to: str, uid: int, folder: str = "INBOX") -> ParsedMessage:
    """The copy of ``message`` that a mailbox received: its own trace header, folder and UID."""
    data = f"Delivered-To: {to}\r\nReceived: by mx for {to}\r\n".encode() + message.raw.data
    raw = dataclasses.replace(message.raw, data=data, size=len(data), uid=uid, folder=folder)
    return dataclasses.replace(message, raw=raw)


def mailboxes_of(email_id: int) -> list[tuple[int, str, str, int]]:
    return [tuple(r) for r in db.session.execute(
        select(EmailMailbox.account_id, EmailMailbox.message_key, EmailMailbox.folder, EmailMailbox.uid)
        .where(EmailMailbox.email_id == email_id).order_by(EmailMailbox.id))]


def two_mailboxes():
    support = make_account()
    sales = make_account()
    sales.name, sales.login = "Sales", "sales@corp.test"
    db.session.commit()
    return support, sales


def test_a_message_sent_to_two_mailboxes_is_stored_once_with_one_ticket(app):
    factories.contact(email="jane@acme.test")
    support, sales = two_mailboxes()
    original = msg(1, mid="both@acme.test", to=("support@corp.test", "sales@corp.test"))
    first = store(support, [delivered(original, "support@corp.test", 10)])
    assert (first.created, first.tickets_created, first.also_in) == (1, 1, 0)
    second = store(sales, [delivered(original, "sales@corp.test", 77, folder="Orders")])
    assert (second.created, second.tickets_created, second.duplicates) == (0, 0, 0)
    assert (second.also_in, second.also_in_details) == (1, {support.id: 1})
    email = db.session.scalars(select(Email)).one()
    assert email.account_id == support.id
    assert mailboxes_of(email.id) == [(support.id, "both@acme.test", "INBOX", 10),
                                      (sales.id, "both@acme.test", "Orders", 77)]
    ticket = db.session.scalars(select(Ticket)).one()
    assert ("ticket", ticket.id) in links_of(10)
    # Seen again by either mailbox (a renumbered folder, another folder): a duplicate, nothing new.
    again = store(sales, [delivered(original, "sales@corp.test", 78, folder="Archive")])
    assert (again.duplicates, again.also_in, again.created) == (1, 0, 0)
    assert store(support, [delivered(original, "support@corp.test", 11)]).duplicates == 1
    assert db.session.scalar(select(func.count(EmailMailbox.id))) == 2
    assert db.session.scalar(select(func.count(Ticket.id))) == 1


def test_a_forged_repeat_message_id_with_other_content_is_stored_apart(app):
    support, sales = two_mailboxes()
    store(support, [msg(1, mid="same@acme.test", body=b"the real message")])
    forged = store(sales, [msg(2, mid="same@acme.test", body=b"pay this invoice")])
    assert (forged.created, forged.also_in) == (1, 0)
    rows = db.session.execute(select(Email.account_id, Email.message_key).order_by(Email.id)).all()
    assert [tuple(r) for r in rows] == [(support.id, "same@acme.test"), (sales.id, "same@acme.test")]
    # The forged one then reaches Support too: Support holds that Message-ID already, so it is linked
    # under the content key, not mistaken for Support's own message.
    linked = store(support, [msg(3, mid="same@acme.test", body=b"pay this invoice")])
    assert (linked.created, linked.also_in, linked.duplicates) == (0, 1, 0)
    keys = db.session.scalars(select(EmailMailbox.message_key).where(EmailMailbox.account_id == support.id)
                              .order_by(EmailMailbox.id)).all()
    assert keys[0] == "same@acme.test" and keys[1].startswith("same@acme.test#sha256:")


def test_a_batch_mixes_new_linked_and_duplicate_messages(app):
    support, sales = two_mailboxes()
    shared = [msg(i, to=("support@corp.test", "sales@corp.test")) for i in (1, 2, 3)]
    store(support, [delivered(m, "support@corp.test", m.raw.uid) for m in shared])
    own = msg(4, to=("sales@corp.test",))
    batch = [delivered(shared[0], "sales@corp.test", 1), own, delivered(shared[2], "sales@corp.test", 3),
             delivered(shared[2], "sales@corp.test", 5)]  # the last: the same message twice in the folder
    counters = store(sales, batch)
    assert (counters.created, counters.also_in, counters.duplicates) == (1, 2, 1)
    assert db.session.scalar(select(func.count(Email.id))) == 4
    assert db.session.scalar(select(func.count(EmailMailbox.id)).where(EmailMailbox.account_id == sales.id)) == 3


def test_mail_stored_before_identities_is_still_deduped_in_its_mailbox(app):
    """Rows written before this change have no identity: their own mailbox still finds them by key."""
    support = make_account(actions="create_email")
    store(support, [msg(1, mid="old@acme.test")])
    db.session.execute(Email.__table__.update().values(identity=None))
    db.session.commit()
    assert store(support, [msg(1, mid="old@acme.test")]).duplicates == 1


def test_deleting_the_first_mailbox_keeps_mail_another_mailbox_reached(app):
    from app.services.scanners import delete_scanner

    support, sales = two_mailboxes()
    shared = msg(1, mid="both@acme.test", to=("support@corp.test", "sales@corp.test"))
    store(support, [delivered(shared, "support@corp.test", 10), msg(2, mid="only-support@acme.test")])
    store(sales, [delivered(shared, "sales@corp.test", 20, folder="Orders")])
    delete_scanner(support.id)
    email = db.session.scalars(select(Email)).one()
    assert (email.account_id, email.folder, email.uid, email.message_id) == (sales.id, "Orders", 20,
                                                                             "both@acme.test")
    assert mailboxes_of(email.id) == [(sales.id, "both@acme.test", "Orders", 20)]


@pytest.fixture(params=["sqlite", "postgresql"])
def file_app(request, tmp_path):
    """An app on a SQLite file (two connections, as two workers have) or a throwaway PostgreSQL database."""
    with database_app(tmp_path, "redis://127.0.0.1:1/0", request.param) as (app, _env, _url), app.app_context():
        yield app
        db.session.remove()


def test_two_workers_storing_one_message_at_once_store_it_once(file_app):
    """The race itself, made certain: Support's worker has written the message and not committed when
    Sales' worker writes it too. Sales' insert waits for Support's transaction (PostgreSQL: on the unique
    identity; SQLite: on the database's one writer), fails once Support commits, and storing it again
    (as a scan does after a failed batch) links it: one e-mail, one ticket."""
    app = file_app
    factories.contact(email="jane@acme.test")
    support, sales = two_mailboxes()
    original = msg(1, mid="race@acme.test", to=("support@corp.test", "sales@corp.test"))
    settings = MailSettings.get()
    support_ctx, sales_ctx = load_context(support, settings), load_context(sales, settings)
    db.session.commit()
    outcome: dict[str, object] = {}
    entered = threading.Event()

    def sales_worker() -> None:
        with app.app_context():
            item = BatchItem(delivered(original, "sales@corp.test", 5), "incoming")
            try:
                entered.set()
                store_batch(sales_ctx, [item], RunCounters())
                db.session.commit()
                outcome["first"] = "stored"
            except Exception as exc:  # PostgreSQL's COPY raises the driver's UniqueViolation
                db.session.rollback()
                outcome["first"] = "conflict" if is_conflict(exc) else repr(exc)
            outcome["retry"] = _store_one(SimpleNamespace(store=sales_ctx), item)
            db.session.remove()

    store_batch(support_ctx, [BatchItem(delivered(original, "support@corp.test", 9), "incoming")], RunCounters())
    thread = threading.Thread(target=sales_worker)
    thread.start()
    entered.wait(10)
    thread.join(1.0)
    assert thread.is_alive(), "the second insert should wait for the first transaction"
    db.session.commit()
    thread.join(30)
    assert outcome["first"] == "conflict"
    retry = outcome["retry"]
    assert (retry.created, retry.also_in, retry.tickets_created) == (0, 1, 0)
    assert db.session.scalar(select(func.count(Email.id))) == 1
    assert db.session.scalar(select(func.count(Ticket.id))) == 1
    email_id = db.session.scalar(select(Email.id))
    assert [m[0] for m in mailboxes_of(email_id)] == [support.id, sales.id]
