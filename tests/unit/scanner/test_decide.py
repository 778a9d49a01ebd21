"""decide_batch: direction, binding, loop protection and the ticket action of a batch, without a database."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta

from app.scanner.decide import decide_batch, searchable, sender_records
from app.scanner.types import (
    BatchItem,
    BatchLookups,
    FilterVerdict,
    NewMessage,
    RecordRef,
    StoreContext,
    TicketInfo,
    TicketPolicy,
)
from tests.unit.scanner.helpers import message

T0 = datetime(2026, 11, 1, 9, 0, 0)
JANE = RecordRef("contact", 7, organization_id=3)
ACME = RecordRef("organization", 3)
BOB = RecordRef("user", 2)


def context(*, actions=("create_email", "bind_email", "open_ticket", "create_ticket"),
            search_fields=("contacts", "organizations", "leads", "users"), closed_policy="reopen",
            loop_limit=0, loop_window=timedelta(0)) -> StoreContext:
    return StoreContext(
        account_id=1, assignee_id=None, actions=frozenset(actions), search_fields=frozenset(search_fields),
        policy=TicketPolicy(create="create_ticket" in actions, reopen="open_ticket" in actions,
                            closed_policy=closed_policy),
        loop_limit=loop_limit, loop_window=loop_window,
        our_addresses=frozenset({"support@corp.test", "bob@corp.test"}), our_domains=frozenset({"corp.test"}))


def lookups(*, addresses=None, parents=None, tickets=(), sender_dates=None) -> BatchLookups:
    return BatchLookups(addresses=addresses or {}, parents=parents or {},
                        tickets_by_number={t.number: t for t in tickets if t.number},
                        tickets_by_id={t.id: t for t in tickets}, sender_dates=sender_dates or {})


def new(parsed, *, folder="incoming", verdict=None, date=None) -> NewMessage:
    parsed.date = date
    return NewMessage(BatchItem(parsed, folder, verdict or FilterVerdict()), parsed.message_key)


def ticket(status, *, number="TT-000042", tid=42, contact_id=7) -> TicketInfo:
    return TicketInfo(id=tid, number=number, status=status, contact_id=contact_id, organization_id=3,
                      requester_email="jane@acme.test")


def test_direction_by_folder_and_by_our_addresses():
    out = decide_batch(context(), [
        new(message(from_addr="jane@acme.test", message_id="a")),
        new(message(from_addr="bob@corp.test", to=["jane@acme.test"], message_id="b")),
        new(message(from_addr="jane@acme.test", message_id="c"), folder="outgoing"),
        new(message(from_addr="bob@corp.test", to=["support@corp.test"], message_id="d")),
    ], lookups(), T0)
    assert [d.direction for d in out.messages] == ["received", "sent", "sent", "internal"]
    # Our own mail never opens a ticket; the customer's does.
    assert out.tickets_created == 1 and out.new_tickets[0].requester_email == "jane@acme.test"


def test_binding_follows_the_search_fields_and_the_bind_action():
    found = lookups(addresses={"jane@acme.test": [ACME, JANE], "bob@corp.test": [BOB]})
    parsed = message(from_addr="jane@acme.test", cc=["bob@corp.test"])
    no_tickets = ("create_email", "bind_email")
    every = decide_batch(context(actions=no_tickets), [new(parsed)], found, T0).messages[0]
    assert every.links == {("contact", 7), ("organization", 3), ("user", 2)}
    users_only = decide_batch(context(actions=no_tickets, search_fields=("users",)), [new(parsed)], found, T0)
    assert users_only.messages[0].links == {("user", 2)}
    unbound = decide_batch(context(actions=("create_email", "create_ticket")), [new(parsed)], found, T0)
    assert unbound.messages[0].links == {("ticket", -1)}  # only the link to its ticket


def test_searchable_and_sender_records():
    index = {"jane@acme.test": [ACME, JANE], "lead@x.test": [RecordRef("lead", 5)]}
    assert searchable(index, frozenset({"leads"})) == {"lead@x.test": [RecordRef("lead", 5)]}
    assert sender_records([ACME, JANE]) == (7, 3)
    assert sender_records([ACME]) == (None, 3)
    assert sender_records([]) == (None, None)


def test_new_ticket_gets_a_placeholder_and_replies_in_the_batch_join_it():
    found = lookups(addresses={"jane@acme.test": [JANE]})
    out = decide_batch(context(search_fields=("users",)), [
        new(message(from_addr="jane@acme.test", message_id="t1", subject="Printer broken")),
        new(message(from_addr="someone@else.test", message_id="t2", in_reply_to="t1", subject="Re: x")),
    ], found, T0)
    assert out.tickets_created == 1 and len(out.new_tickets) == 1
    created = out.new_tickets[0]
    # The sender's contact and organization come from every record of the address, searchable or not.
    assert (created.temp_id, created.contact_id, created.organization_id) == (-1, 7, 3)
    assert created.subject == "Printer broken" and created.parent_id is None
    assert ("ticket", -1) in out.messages[0].links and ("ticket", -1) in out.messages[1].links


def test_closed_ticket_reopened_once_then_already_open():
    closed = ticket("closed")
    found = lookups(addresses={"jane@acme.test": [JANE]}, tickets=[closed])
    out = decide_batch(context(), [
        new(message(from_addr="jane@acme.test", message_id="a", subject="Re: [TT-000042] again")),
        new(message(from_addr="jane@acme.test", message_id="b", subject="Re: [TT-000042] and again")),
    ], found, T0)
    assert out.status_changes == {42: "open"} and out.tickets_reopened == 1 and out.tickets_created == 0
    assert all(("ticket", 42) in d.links for d in out.messages)
    assert found.tickets_by_id[42].status == "closed"  # the lookups are not changed


def test_closed_ticket_policies_and_waiting_ticket():
    found = lookups(addresses={"jane@acme.test": [JANE]}, tickets=[ticket("closed")])
    quoting = message(from_addr="jane@acme.test", subject="Re: [TT-000042] x")
    referring = decide_batch(context(closed_policy="new_ticket"), [new(quoting)], found, T0)
    assert referring.new_tickets[0].parent_id == 42 and referring.status_changes == {}
    ignored = decide_batch(context(closed_policy="ignore"), [new(quoting)], found, T0)
    assert (ignored.new_tickets, ignored.status_changes) == ([], {})
    waiting = lookups(addresses={"jane@acme.test": [JANE]}, tickets=[ticket("waiting")])
    answered = decide_batch(context(), [new(quoting)], waiting, T0)
    assert answered.status_changes == {42: "answered"} and answered.tickets_reopened == 0


def test_a_stranger_quoting_a_ticket_number_gets_a_ticket_of_their_own():
    found = lookups(addresses={"jane@acme.test": [JANE]}, tickets=[ticket("open")])
    out = decide_batch(context(), [new(message(from_addr="stranger@evil.test", subject="[TT-000042] hi"))],
                       found, T0)
    assert out.tickets_created == 1 and out.messages[0].links == {("ticket", -1)}


def test_automatic_mail_and_ticket_filters_open_no_ticket():
    out = decide_batch(context(), [
        new(message(message_id="a", automatic_reason="Auto-Submitted: auto-replied")),
        new(message(message_id="b"), verdict=FilterVerdict(store=True, tickets=False, rule_id=1)),
    ], lookups(), T0)
    assert out.tickets_created == 0 and all(not d.links for d in out.messages)


def test_loop_protection_counts_stored_mail_and_the_batch_by_the_messages_dates():
    ctx = context(loop_limit=3, loop_window=timedelta(minutes=10))
    before = {"robot@loop.test": [T0 - timedelta(minutes=2)]}
    found = lookups(sender_dates=before)
    burst = [new(message(from_addr="robot@loop.test", message_id=f"m{i}", subject=f"Alert {i}"),
                 date=T0 + timedelta(seconds=20 * i)) for i in range(4)]
    assert decide_batch(ctx, burst, found, T0).tickets_created == 2  # one stored + two = the limit
    assert before == {"robot@loop.test": [T0 - timedelta(minutes=2)]}
    calm = [new(message(from_addr="calm@acme.test", message_id=f"c{i}", subject=f"Topic {i}"),
                date=T0 + timedelta(days=i)) for i in range(5)]
    assert decide_batch(ctx, calm, lookups(), T0).tickets_created == 5


def test_a_message_without_a_date_counts_at_now():
    ctx = context(loop_limit=1, loop_window=timedelta(minutes=10))
    found = lookups(sender_dates={"robot@loop.test": [T0 - timedelta(minutes=1)]})
    undated = new(message(from_addr="robot@loop.test"))
    assert decide_batch(ctx, [undated], found, T0).tickets_created == 0
    assert decide_batch(ctx, [undated], found, T0 + timedelta(hours=1)).tickets_created == 1


def test_decide_batch_changes_none_of_its_arguments():
    found = lookups(addresses={"jane@acme.test": [JANE]}, parents={"p": [RecordRef("ticket", 42)]},
                    tickets=[ticket("closed")], sender_dates={"jane@acme.test": [T0]})
    snapshot = copy.deepcopy(found)
    messages = [new(message(from_addr="jane@acme.test", message_id="x", in_reply_to="p")),
                new(message(from_addr="jane@acme.test", message_id="y", in_reply_to="x"))]
    out = decide_batch(context(loop_limit=5, loop_window=timedelta(minutes=5)), messages, found, T0)
    assert found == snapshot
    assert out.status_changes == {42: "open"} and ("ticket", 42) in out.messages[1].links
