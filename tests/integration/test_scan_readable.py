"""Hard-to-read messages scanned from the real Dovecot read well on their page: the text of a multipart
whose parts use an undeclared boundary, and the date of a message without a usable Date."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Email
from app.scanning.run import run_scan
from tests.integration.test_scan_dovecot import mail, make_scanner

pytestmark = pytest.mark.integration

CORPUS = Path(__file__).resolve().parents[1] / "corpus"


def _email(subject: str) -> Email:
    return db.session.scalars(select(Email).where(Email.subject == subject)).one()


def test_broken_boundary_text_and_a_dateless_message_read_well(app, dovecot, client, auth, admin):
    login, password = dovecot.new_user("readable")
    account = make_scanner(app, dovecot, login, password)
    received = datetime(2026, 11, 30, 7, 15, 2, tzinfo=UTC)
    dovecot.append(login, password, "INBOX", (CORPUS / "02-broken-boundary.eml").read_bytes())
    dovecot.append(login, password, "INBOX", (CORPUS / "05-missing-headers.eml").read_bytes(), date_time=received)
    dovecot.append(login, password, "INBOX", mail(1))  # dated Mon, 02 Nov 2026: older than the dateless one

    run = run_scan(account.id, trigger="cli")
    assert run.status == "done", run.message
    auth.login("admin")

    broken = _email("Broken boundary")
    page = client.get(f"/records/emails/{broken.id}").get_data(as_text=True)
    assert "The parts use a boundary that was never declared." in page
    assert "--other-boundary" not in page  # the parts, not the raw body
    assert "data.bin" in page  # the attachment is recovered too

    dateless = _email("No date, no sender, no id")
    assert dateless.date == datetime(2026, 11, 30, 7, 15, 2)
    page = client.get(f"/records/emails/{dateless.id}").get_data(as_text=True)
    assert "2026-11-30 07:15" in page
    assert "The message has no usable Date: this is when the mail server received it." in page
    assert "its date is when the mail server received it" not in page  # not listed as a defect as well
    # The e-mail list sorts it by that date: above the older mail, not below it.
    listing = client.get("/records/emails").get_data(as_text=True)
    assert listing.index("No date, no sender, no id") < listing.index("Question 1")
