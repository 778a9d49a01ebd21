"""Hand-off targets: what Roundcube opens after the login (compose or one message), built and checked."""

from __future__ import annotations

import json

import pytest

from app.scanner.bind import ticket_numbers_in
from app.services.autologin import targets


def test_compose_target_as_the_plugin_reads_it():
    target = targets.compose(targets.recipient("jane@acme.test", "Jane Doe"), "Hello")
    assert target.as_json() == {"action": "compose", "to": "Jane Doe <jane@acme.test>", "subject": "Hello"}


def test_show_target_as_the_plugin_reads_it():
    assert targets.show("Archive/2026", 42).as_json() == {"action": "show", "folder": "Archive/2026", "uid": 42}


def test_recipient_quotes_names_and_leaves_bare_addresses_bare():
    assert targets.recipient("jane@acme.test") == "jane@acme.test"
    assert targets.recipient("jane@acme.test", "jane@acme.test") == "jane@acme.test"
    assert targets.recipient("o.brien@acme.test", 'O"Brien, Pat') == '"O\\"Brien, Pat" <o.brien@acme.test>'
    # A name with a line break cannot add a header: it is put on one line.
    assert targets.recipient("jane@acme.test", "Jane\r\nBcc: x@evil.test") == '"Jane Bcc: x@evil.test" <jane@acme.test>'


@pytest.mark.parametrize("address", ["", "no-at-sign", "a@b.test, c@d.test", "a@b.test\r\nBcc: x@y.test",
                                     "<a@b.test>", "a b@c.test"])
def test_recipient_refuses_what_is_not_one_address(address):
    with pytest.raises(targets.TargetError):
        targets.recipient(address)


@pytest.mark.parametrize("to, subject", [("", "x"), ("a@b.test\n", "x"), ("a@b.test", "line\nbreak"),
                                         ("a@b.test", "x" * 501), ("a" * 501, "")])
def test_compose_refuses_values_a_header_cannot_carry(to, subject):
    with pytest.raises(targets.TargetError):
        targets.compose(to, subject)


@pytest.mark.parametrize("folder, uid", [("", 1), ("INBOX", 0), ("INBOX", -3), ("INBOX", 2**32), ("INBOX", "7"),
                                         ("INBOX", True), ("IN\nBOX", 1), ("x" * 256, 1)])
def test_show_refuses_places_no_server_has(folder, uid):
    with pytest.raises(targets.TargetError):
        targets.show(folder, uid)


def test_ticket_subject_carries_the_number_the_scanner_binds_back():
    subject = targets.ticket_subject("TT-000042", "Printer on fire")
    assert subject == "[TT-000042] Printer on fire"
    assert ticket_numbers_in(subject) == ["TT-000042"]
    # The answer to it ("Re: ...") still names the ticket.
    assert ticket_numbers_in("Re: " + subject) == ["TT-000042"]


def test_ticket_subject_keeps_a_subject_that_already_names_the_ticket():
    assert targets.ticket_subject("TT-000042", "Re: [tt-000042] Printer") == "Re: [tt-000042] Printer"
    assert targets.ticket_subject(None, "Printer") == "Printer"
    assert targets.ticket_subject("TT-000042", "Multi\nline") == "[TT-000042] Multi line"


def test_dump_and_load_round_trip():
    for target in (targets.compose("a@b.test", "Grüße"), targets.show("Entwürfe", 7)):
        kind, raw = targets.dump(target)
        assert kind == target.action and json.loads(raw) == target.as_json()
        assert targets.load(kind, raw) == target
    assert targets.dump(None) == (None, None)
    assert targets.load(None, None) is None


@pytest.mark.parametrize("kind, raw", [
    ("delete", '{"action":"delete"}'),
    ("compose", '{"action":"show","folder":"INBOX","uid":1}'),
    ("compose", "not json"),
    ("compose", '["compose"]'),
    ("show", '{"action":"show","folder":"INBOX","uid":"1"}'),
    ("compose", '{"action":"compose","to":"a@b.test\\r\\nBcc: c@d.test"}'),
])
def test_load_turns_anything_unexpected_into_the_inbox(kind, raw):
    assert targets.load(kind, raw) is None
