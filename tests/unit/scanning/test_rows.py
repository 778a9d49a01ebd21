"""The rows of a batch, built without a database: defects by flag and value, text hygiene."""

from __future__ import annotations

from datetime import datetime

from app.scanner.types import TRUNCATED_DEFECT, BatchItem, MessageDecision, NewMessage, RawMessage
from app.scanning.store.rows import REUSED_MESSAGE_ID, clean_text, email_row
from tests.unit.scanning.store_helpers import msg

NOW = datetime(2026, 11, 2, 8, 0, 0)


def row_of(parsed, *, reused=False) -> dict:
    decision = MessageDecision(NewMessage(BatchItem(parsed, "incoming"), parsed.message_key, reused), "received",
                               set())
    return email_row(1, decision, NOW)


def test_a_message_cut_to_its_header_says_so_once():
    parsed = msg(1)
    parsed.raw = RawMessage(folder="INBOX", uidvalidity=7, uid=1, data=b"Subject: x\r\n\r\n", size=40_000_000,
                            truncated=True)
    assert row_of(parsed)["defects"] == TRUNCATED_DEFECT  # added when the parse step did not
    parsed.defects = ["no Date header", TRUNCATED_DEFECT]
    assert row_of(parsed)["defects"].split("\n") == ["no Date header", TRUNCATED_DEFECT]
    # A defect that merely mentions a limit is not the size limit's.
    parsed.defects = ["the header line limit was exceeded"]
    assert row_of(parsed)["defects"].split("\n") == ["the header line limit was exceeded", TRUNCATED_DEFECT]


def test_a_reused_message_id_is_a_defect_of_the_row():
    parsed = msg(2)
    assert row_of(parsed)["defects"] is None
    assert row_of(parsed, reused=True)["defects"] == REUSED_MESSAGE_ID


def test_clean_text():
    assert clean_text(None) is None
    assert clean_text("a\x00b") == "ab"
    assert clean_text("lone \udcff surrogate") == "lone ? surrogate"
    assert clean_text("abcdef", 3) == "abc"
