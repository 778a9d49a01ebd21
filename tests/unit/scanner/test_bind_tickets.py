"""Binding by address, thread and ticket number; ticket decisions."""

import pytest

from app.scanner.bind import addresses_to_look_up, bind_message, ticket_numbers_in
from app.scanner.tickets import decide
from app.scanner.types import BindResult, RecordRef, TicketInfo, TicketPolicy
from tests.unit.scanner.helpers import message

ALICE = RecordRef("contact", 1, organization_id=10)
BOB = RecordRef("contact", 2, organization_id=20)
CAROL = RecordRef("contact", 3, organization_id=10)  # Alice's colleague
ACME = RecordRef("organization", 10)
LEAD = RecordRef("lead", 5)
AGENT = RecordRef("user", 9)
INDEX = {
    "alice@acme.example": [ALICE],
    "bob@other.example": [BOB],
    "carol@acme.example": [CAROL],
    "info@acme.example": [ACME, LEAD],
    "agent@corp.test": [AGENT],
}
T42 = TicketInfo(id=42, number="TT-000042", status="open", contact_id=1, organization_id=10,
                 requester_email="alice@acme.example")
T77 = TicketInfo(id=77, number="TT-000077", status="closed", contact_id=2, organization_id=20,
                 requester_email="bob@other.example")
BY_NUMBER = {t.number: t for t in (T42, T77)}
BY_ID = {t.id: t for t in (T42, T77)}


def bind(parsed, folder="incoming", parents=None):
    return bind_message(parsed, folder_direction=folder, address_index=INDEX, parent_records=parents or {},
                        tickets_by_number=BY_NUMBER, tickets_by_id=BY_ID)


def test_addresses_to_look_up_order():
    parsed = message(from_addr="a@x.example", reply_to=["r@x.example", "a@x.example"], to=["t@corp.test"],
                     cc=["c@x.example"])
    assert addresses_to_look_up(parsed, "incoming") == ["a@x.example", "r@x.example", "t@corp.test", "c@x.example"]
    assert addresses_to_look_up(parsed, "outgoing") == ["t@corp.test", "c@x.example", "a@x.example"]
    assert addresses_to_look_up(message(from_addr=None, to=[]), "incoming") == []


def test_ticket_numbers():
    assert ticket_numbers_in("Re: [tt-000042] help, also TT-000077 and TT-000042") == ["TT-000042", "TT-000077"]
    assert ticket_numbers_in("XTT-000001 TT-0000012 TT-12345 TT_000001") == []
    assert ticket_numbers_in("") == []


def test_records_by_address_with_organizations_deduplicated():
    parsed = message(from_addr="alice@acme.example", cc=["carol@acme.example", "info@acme.example"],
                     to=["agent@corp.test"])
    result = bind(parsed)
    assert result.records == [ALICE, ACME, AGENT, CAROL, LEAD]
    assert result.ticket is None and result.foreign_ticket_number is None


def test_ticket_number_from_requester_contact_colleague_or_user():
    for sender in ("alice@acme.example", "carol@acme.example", "agent@corp.test", "info@acme.example"):
        result = bind(message(from_addr=sender, subject="Re: [TT-000042] printer"))
        assert result.ticket == T42, sender
        assert RecordRef("ticket", 42) in result.records
        assert result.foreign_ticket_number is None
    # the requester address alone is enough, even when it is no contact
    t = TicketInfo(id=50, number="TT-000050", status="open", contact_id=None, organization_id=None,
                   requester_email="Walkin@Guest.example")
    result = bind_message(message(from_addr="walkin@guest.example", subject="TT-000050"), folder_direction="incoming",
                          address_index={}, parent_records={}, tickets_by_number={t.number: t}, tickets_by_id={})
    assert result.ticket == t


def test_stranger_quoting_a_ticket_number_is_not_bound():
    for sender in ("bob@other.example", "mallory@evil.example", None):
        result = bind(message(from_addr=sender, subject="Fwd: TT-000042"))
        assert result.ticket is None, sender
        assert result.foreign_ticket_number == "TT-000042"
        assert all(r.type != "ticket" for r in result.records)


def test_unknown_number_ignored_and_first_belonging_number_wins():
    assert bind(message(subject="TT-999999")).foreign_ticket_number is None
    result = bind(message(from_addr="bob@other.example", subject="TT-000042 and TT-000077"))
    assert result.ticket == T77 and result.foreign_ticket_number == "TT-000042"


def test_reply_bound_to_what_the_parent_was_bound_to():
    parents = {"p1@corp.test": [RecordRef("ticket", 42), ALICE], "p0@corp.test": [LEAD]}
    parsed = message(from_addr="newperson@elsewhere.example", in_reply_to="p1@corp.test",
                     references=["p0@corp.test", "p1@corp.test"])
    result = bind(parsed, parents=parents)
    assert result.ticket == T42
    assert result.records == [RecordRef("ticket", 42), ALICE, ACME, LEAD]
    # the same stranger quoting that ticket's own number in its own thread is not "foreign"
    result = bind(message(from_addr="newperson@elsewhere.example", subject="Re: TT-000042", in_reply_to="p1@corp.test"),
                  parents=parents)
    assert result.ticket == T42 and result.foreign_ticket_number is None


def test_outgoing_binds_by_recipients():
    parsed = message(from_addr="agent@corp.test", to=["bob@other.example"])
    assert bind(parsed, folder="outgoing").records == [BOB, RecordRef("organization", 20), AGENT]


POLICY = TicketPolicy(create=True, reopen=True, closed_policy="reopen")


def ticket(status):
    return TicketInfo(id=5, number="TT-000005", status=status, contact_id=None, organization_id=None,
                      requester_email=None)


def act(bound=None, policy=POLICY, direction="received", filter_allows=True, throttled=False, auto=None,
        frm="alice@customer.example"):
    return decide(message(automatic_reason=auto, from_addr=frm), direction=direction,
                  bound=bound or BindResult([], None),
                  policy=policy, filter_allows=filter_allows, throttled=throttled)


@pytest.mark.parametrize("status,policy,kind,ticket_id", [
    ("closed", POLICY, "reopen", 5),
    ("closed", TicketPolicy(create=True, reopen=False, closed_policy="reopen"), "none", None),
    ("closed", TicketPolicy(create=True, reopen=True, closed_policy="new_ticket"), "new_referring", 5),
    ("closed", TicketPolicy(create=False, reopen=True, closed_policy="new_ticket"), "none", None),
    ("closed", TicketPolicy(create=True, reopen=True, closed_policy="ignore"), "none", None),
    ("waiting", POLICY, "answered", 5),
    ("waiting", TicketPolicy(create=True, reopen=False, closed_policy="reopen"), "none", None),
    ("open", POLICY, "none", None),
    ("in_progress", POLICY, "none", None),
])
def test_bound_ticket_actions(status, policy, kind, ticket_id):
    action = act(BindResult([], ticket(status)), policy=policy)
    assert (action.kind, action.ticket_id) == (kind, ticket_id)
    assert action.reason


def test_unbound_creates_only_with_create_action():
    assert act().kind == "create"
    foreign = act(BindResult([], None, foreign_ticket_number="TT-000042"))
    assert foreign.kind == "create" and "TT-000042" in foreign.reason
    assert act(policy=TicketPolicy(create=False, reopen=True, closed_policy="reopen")).kind == "none"


@pytest.mark.parametrize("kw,words,held", [
    ({"direction": "sent"}, "sent", None),
    ({"direction": "internal"}, "internal", None),
    ({"auto": "auto-reply (Auto-Submitted: auto-replied)"}, "Auto-Submitted", "automatic"),
    ({"filter_allows": False}, "filter", "filtered"),
    ({"frm": None}, "no sender", "no_sender"),
    ({"throttled": True}, "loop", "throttled"),
])
def test_nothing_happens_for(kw, words, held):
    for bound in (BindResult([], None), BindResult([], ticket("closed")), BindResult([], ticket("waiting"))):
        action = act(bound, **kw)
        assert action.kind == "none" and words in action.reason
        assert action.held == held


def test_a_message_acting_as_usual_is_not_held():
    assert act().held is None
    assert act(BindResult([], ticket("open"))).held is None  # nothing to do, but nothing held back


def test_belonging_index_recognizes_a_contact_outside_the_search_fields():
    parsed = message(from_addr="alice@acme.example", subject="Re: TT-000042")
    narrowed = {}  # the scanner binds to leads only: Alice's contact is not in the address index
    result = bind_message(parsed, folder_direction="incoming", address_index=narrowed, parent_records={},
                          tickets_by_number=BY_NUMBER, tickets_by_id=BY_ID)
    assert result.ticket == T42  # still the requester by address
    stranger = message(from_addr="carol@acme.example", subject="Re: TT-000042")
    result = bind_message(stranger, folder_direction="incoming", address_index=narrowed, parent_records={},
                          tickets_by_number=BY_NUMBER, tickets_by_id=BY_ID)
    assert result.ticket is None and result.foreign_ticket_number == "TT-000042"
    result = bind_message(stranger, folder_direction="incoming", address_index=narrowed, parent_records={},
                          tickets_by_number=BY_NUMBER, tickets_by_id=BY_ID, belonging_index=INDEX)
    assert result.ticket == T42 and result.records == [RecordRef("ticket", 42)]
