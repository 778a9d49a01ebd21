"""A message without a usable Date is dated by the server's receive time (IMAP INTERNALDATE)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from app.scanner.parse import parse_message
from app.scanner.types import RECEIVED_DATE_DEFECT, RawMessage
from app.scanning.imap_reads import _parse_fetch, internal_date

CORPUS = Path(__file__).resolve().parents[2] / "corpus"
RECEIVED = datetime(2026, 11, 30, 7, 15, 2)


def _raw(name: str, received=RECEIVED) -> RawMessage:
    data = (CORPUS / name).read_bytes()
    return RawMessage("INBOX", 7, 1, data, len(data), internal_date=received)


@pytest.mark.parametrize("name", ["05-missing-headers.eml", "22-bad-date-and-addresses.eml"])
def test_no_usable_date_takes_the_servers_receive_time_and_says_so(name):
    parsed = parse_message(_raw(name))
    assert parsed.date == RECEIVED and RECEIVED_DATE_DEFECT in parsed.defects


def test_a_usable_date_header_wins_and_no_receive_time_leaves_it_empty():
    parsed = parse_message(_raw("01-plain-utf8.eml"))
    assert parsed.date == datetime(2025, 7, 1, 8, 15) and RECEIVED_DATE_DEFECT not in parsed.defects
    assert parse_message(_raw("05-missing-headers.eml", received=None)).date is None


@pytest.mark.parametrize("line,expected", [
    (b'1 (UID 5 RFC822.SIZE 10 INTERNALDATE "30-Nov-2026 08:15:02 +0100" BODY[] {10}', RECEIVED),
    (b'1 (UID 5 INTERNALDATE " 3-Dec-2026 00:30:00 -0200" RFC822.SIZE 10', datetime(2026, 12, 3, 2, 30)),
    (b'1 (UID 5 RFC822.SIZE 10 BODY[] {10}', None),
    (b'1 (UID 5 INTERNALDATE "yesterday" BODY[] {10}', None),
])
def test_internal_date_of_a_fetch_line(line, expected):
    assert internal_date(line) == expected


def test_a_fetch_answer_gives_each_message_its_receive_time():
    data = [(b'1 (UID 5 RFC822.SIZE 3 INTERNALDATE "30-Nov-2026 08:15:02 +0100" BODY[] {3}', b"abc"), b")",
            (b'2 (UID 6 RFC822.SIZE 3 BODY[] {3}', b"def"), b")"]
    assert _parse_fetch(data) == {5: (3, b"abc", RECEIVED), 6: (3, b"def", None)}
