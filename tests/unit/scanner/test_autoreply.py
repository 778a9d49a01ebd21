"""Auto-replies, bounces and bulk mail are recognized; person-written mail is not."""

import pytest

from app.scanner.autoreply import automatic_reason
from tests.unit.scanner.helpers import message


@pytest.mark.parametrize(
    "headers,sender,expected",
    [
        ([("auto-submitted", "auto-replied")], None, "auto-reply (Auto-Submitted: auto-replied)"),
        ([("auto-submitted", "auto-generated; owner-email=x@y")], None, "Auto-Submitted: auto-generated"),
        ([("x-autoreply", "yes")], None, "X-Autoreply"),
        ([("x-autorespond", "Vacation")], None, "X-Autorespond"),
        ([("precedence", "Bulk")], None, "Precedence: bulk"),
        ([("precedence", "junk")], None, "Precedence: junk"),
        ([("precedence", "list")], None, "Precedence: list"),
        ([("list-id", "Users <users.lists.example>")], None, "List-Id"),
        ([("x-auto-response-suppress", "All")], None, "X-Auto-Response-Suppress"),
        ([("x-auto-response-suppress", "DR, OOF")], None, "X-Auto-Response-Suppress"),
        ([("return-path", "<>")], None, "Return-Path: <>"),
        ([], "mailer-daemon@mx.example", "bounce (from mailer-daemon@mx.example)"),
        ([], "postmaster@mx.example", "bounce"),
        ([("content-type", "multipart/report; report-type=delivery-status; boundary=x")], None, "multipart/report"),
    ],
)
def test_automatic(headers, sender, expected):
    reason = automatic_reason(message(headers=headers, from_addr=sender or "robot@x.example"))
    assert reason is not None and expected in reason


@pytest.mark.parametrize(
    "headers",
    [
        [("auto-submitted", "no")],
        [("x-autoreply", "no")],
        [("precedence", "first-class")],
        [("list-unsubscribe", "<mailto:u@x.example>")],
        [("x-auto-response-suppress", "DR, RN")],
        [("return-path", "<alice@customer.example>")],
        [("content-type", "multipart/mixed; boundary=x")],
    ],
)
def test_person_written(headers):
    assert automatic_reason(message(headers=headers)) is None
