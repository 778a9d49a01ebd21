"""Mail domains: their stored form, the public domains, and binding by an organization's domain (pure)."""

from __future__ import annotations

from datetime import datetime

import pytest

from app.scanner.bind import bind_message, sender_belongs
from app.scanner.decide import decide_batch
from app.scanner.domains import (
    DEFAULT_PUBLIC_DOMAINS,
    domain_key,
    domain_of,
    domains_to_look_up,
    is_public,
    normalize_domain,
    parse_domains,
    readable_domain,
    refs_of,
    stored_domains,
)
from app.scanner.types import BatchItem, BatchLookups, FilterVerdict, NewMessage, RecordRef, TicketInfo
from tests.unit.scanner.helpers import message
from tests.unit.scanner.test_decide import context

ACME = RecordRef("organization", 3)
GLOBEX = RecordRef("organization", 4)
JANE = RecordRef("contact", 7, organization_id=4)  # a contact at acme.test who works for Globex
PUBLIC = stored_domains("\n".join(DEFAULT_PUBLIC_DOMAINS))
INDEX = {domain_key("acme.test"): [ACME], "jane@acme.test": [JANE]}


@pytest.mark.parametrize(("typed", "stored"), [
    ("acme.test", "acme.test"),
    ("  Acme.TEST ", "acme.test"),
    ("@acme.test", "acme.test"),
    ("acme.test.", "acme.test"),
    ("eu.sales.acme.test", "eu.sales.acme.test"),
    ("Bücher.test", "xn--bcher-kva.test"),
    ("xn--bcher-kva.test", "xn--bcher-kva.test"),
])
def test_a_typed_domain_gets_its_one_stored_form(typed, stored):
    assert normalize_domain(typed) == stored


@pytest.mark.parametrize(("typed", "words"), [
    ("", "Write a domain name"),
    ("jane@acme.test", "is an e-mail address: write only the part after the @, e.g. acme.test"),
    ("https://acme.test/", "no https://"),
    ("acme test", "no spaces"),
    ("acme", "at least one dot"),
    ("-acme.test", "letters, digits and hyphens"),
    ("acme..test", "letters, digits and hyphens"),
    ("10.0.0.1", "is not a domain name"),
    ("a" * 64 + ".test", "letters, digits and hyphens"),
    (("abcdefghij." * 25) + "test", "too long"),
])
def test_what_is_no_domain_is_refused_in_words(typed, words):
    with pytest.raises(ValueError) as caught:
        normalize_domain(typed)
    assert words in str(caught.value)


def test_a_stored_international_domain_reads_as_people_write_it():
    assert readable_domain("xn--bcher-kva.test") == "bücher.test"
    assert readable_domain("acme.test") == "acme.test"
    assert readable_domain("xn--ab-.test") == "xn--ab-.test"  # not valid IDNA: shown as stored


def test_a_list_of_domains_is_split_normalized_and_deduplicated():
    assert parse_domains("Acme.test, acme.test;eu.acme.test\n\n @globex.test") == \
        ["acme.test", "eu.acme.test", "globex.test"]
    assert parse_domains("") == []
    with pytest.raises(ValueError, match="'not a domain' is not a domain name|'not' is not a domain name"):
        parse_domains("acme.test, not a domain")


def test_the_domain_of_an_address():
    assert domain_of("jane@Acme.Test") == "acme.test"
    assert domain_of("jane@bücher.test") == "xn--bcher-kva.test"
    assert domain_of("\"odd@local\"@acme.test") == "acme.test"
    assert domain_of("no-at-sign") is None
    assert domain_of("jane@") is None
    assert domain_of(None) is None


def test_public_domains_and_their_subdomains_are_public():
    assert {"gmail.com", "outlook.com", "hotmail.com", "yahoo.com", "icloud.com", "gmx.net", "web.de",
            "proton.me"} <= PUBLIC
    assert is_public("gmail.com", PUBLIC)
    assert is_public("eu.gmail.com", PUBLIC)
    assert not is_public("acme.test", PUBLIC)
    assert not is_public("com", PUBLIC)
    assert not is_public("gmail.com.acme.test", PUBLIC)


def test_only_domains_that_may_bind_are_looked_up():
    addresses = ["jane@acme.test", "joe@acme.test", "x@gmail.com", "y@mail.gmail.com", "me@corp.test",
                 "broken@"]
    assert domains_to_look_up(addresses, PUBLIC | {"corp.test"}) == {"acme.test"}


def test_an_address_brings_its_own_records_then_its_domains():
    assert refs_of("jane@acme.test", INDEX) == [JANE, ACME]
    assert refs_of("new.person@acme.test", INDEX) == [ACME]
    assert refs_of("new.person@ACME.test", INDEX) == [ACME]
    assert refs_of("someone@elsewhere.test", INDEX) == []


def _bind(parsed, index=INDEX):
    return bind_message(parsed, folder_direction="incoming", address_index=index, parent_records={},
                        tickets_by_number={}, tickets_by_id={})


def test_mail_from_or_to_an_unknown_address_at_the_domain_binds_to_the_organization():
    assert _bind(message(from_addr="new.person@acme.test")).records == [ACME]
    outgoing = bind_message(message(from_addr="agent@corp.test", to=["new.person@acme.test"]),
                            folder_direction="outgoing", address_index=INDEX, parent_records={},
                            tickets_by_number={}, tickets_by_id={})
    assert outgoing.records == [ACME]
    # A known contact keeps binding as before, with its own organization; the domain's comes too.
    assert _bind(message(from_addr="jane@acme.test")).records == [JANE, GLOBEX, ACME]
    assert _bind(message(from_addr="someone@gmail.com")).records == []


def test_a_person_at_the_domain_belongs_to_the_organizations_ticket():
    ticket = TicketInfo(id=42, number="TT-000042", status="open", contact_id=None, organization_id=3,
                        requester_email="first@acme.test")
    assert sender_belongs("second@acme.test", ticket, INDEX)
    assert not sender_belongs("someone@elsewhere.test", ticket, INDEX)


def test_a_ticket_opened_from_an_unknown_address_at_the_domain_gets_the_organization():
    parsed = message(from_addr="new.person@acme.test", subject="Printer broken")
    found = BatchLookups(addresses=INDEX, parents={}, tickets_by_number={}, tickets_by_id={}, sender_dates={})
    out = decide_batch(context(), [NewMessage(BatchItem(parsed, "incoming", FilterVerdict()), "m1")], found,
                       datetime(2026, 11, 1))
    assert [(t.contact_id, t.organization_id) for t in out.new_tickets] == [(None, 3)]
    assert ("organization", 3) in out.messages[0].links


def test_without_the_organizations_search_field_the_domain_does_not_bind():
    parsed = message(from_addr="new.person@acme.test")
    found = BatchLookups(addresses=INDEX, parents={}, tickets_by_number={}, tickets_by_id={}, sender_dates={})
    out = decide_batch(context(search_fields=("contacts",), actions=("create_email", "bind_email")),
                       [NewMessage(BatchItem(parsed, "incoming", FilterVerdict()), "m1")], found,
                       datetime(2026, 11, 1))
    assert out.messages[0].links == set()
