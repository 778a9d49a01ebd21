"""A scanner's choices for the mail already in its mailbox: import it as an archive, read only mail
since a day. The plan's archive boundary (pure), the service's validation and the scanner form."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry, MailAccount, ScanFolder
from app.models.base import utcnow
from app.scanner.plan import plan_folder
from app.scanner.types import FolderState, FolderStatus
from app.services import scanners
from app.services.scanner_fields import ExistingMail, clean_existing
from tests.unit.test_scanners_admin import form_data, make_scanner, make_server

TODAY = date(2026, 12, 3)


def test_the_archive_boundary_is_the_uidnext_of_the_first_run_and_stays():
    status = FolderStatus(uidvalidity=5, uidnext=101, messages=100)
    first = plan_folder(FolderState("INBOX", "incoming", None, 0), status, archive=True)
    assert first.archive_below == 101 and first.after_uid == 0
    # The next runs keep it, also after more mail came (that mail is not archive).
    later = plan_folder(FolderState("INBOX", "incoming", 5, 40, 101), FolderStatus(5, 130, 129), archive=True)
    assert later.archive_below == 101
    # Set on a scanner that has read up to UID 60: the mail there now is archive.
    turned_on = plan_folder(FolderState("INBOX", "incoming", 5, 60, None), FolderStatus(5, 130, 129), archive=True)
    assert turned_on.archive_below == 130
    # A renumbered folder holds old mail only: all of it is archive again.
    renumbered = plan_folder(FolderState("INBOX", "incoming", 5, 100, 101), FolderStatus(9, 50, 49), archive=True)
    assert renumbered.reset and renumbered.archive_below == 50
    # A boundary of another mailbox (the folder starts over) does not hold.
    moved = plan_folder(FolderState("INBOX", "incoming", None, 0, 101), FolderStatus(3, 7, 6), archive=True)
    assert moved.archive_below == 7


def test_without_the_option_or_a_uidnext_there_is_no_boundary():
    assert plan_folder(FolderState("INBOX", "incoming", 5, 0, 101), FolderStatus(5, 101, 100)).archive_below is None
    no_uidnext = plan_folder(FolderState("INBOX", "incoming", None, 0), FolderStatus(5, 0, 100), archive=True)
    assert no_uidnext.archive_below is None and no_uidnext.has_new


@pytest.mark.parametrize("since,expected", [
    (None, None), ("", None), ("  ", None), ("2026-01-31", date(2026, 1, 31)), (date(2025, 5, 1), date(2025, 5, 1)),
    ("2026-12-03", TODAY),
])
def test_since_days_that_are_accepted(since, expected):
    errors: dict[str, str] = {}
    assert clean_existing(ExistingMail(True, since), errors, TODAY) == (True, expected)
    assert errors == {}


@pytest.mark.parametrize("since,words", [
    ("31.01.2026", "YYYY-MM-DD"),
    ("yesterday", "YYYY-MM-DD"),
    ("2026-02-30", "not a day of the calendar"),
    ("2026-12-04", "in the future"),
    ("1969-12-31", "from 1970 on"),
])
def test_since_days_that_are_refused_in_words(since, words):
    errors: dict[str, str] = {}
    clean_existing(ExistingMail(False, since), errors, TODAY)
    assert words in errors["since_date"]


def test_the_scanner_form_saves_the_choices_and_audits_them(app, client, auth, admin):
    server = make_server()
    auth.login("admin")
    data = form_data(client, "/admin/scanners/new", name="Old box", server_id=str(server.id),
                     login="old@corp.test", password="pw-123456", actions=["create_email", "bind_email"],
                     search_fields=["contacts"], archive_existing="y", since_date="2024-01-01")
    assert client.post("/admin/scanners/new", data=data).status_code == 302
    account = db.session.scalars(select(MailAccount).where(MailAccount.name == "Old box")).one()
    assert account.archive_existing is True and account.since_date == date(2024, 1, 1)
    audit = db.session.scalars(select(AuditEntry.details).where(AuditEntry.action == "mail_scanner.create")).one()
    assert "archive_existing=True since_date=2024-01-01" in audit
    page = client.get(f"/admin/scanners/{account.id}/edit").get_data(as_text=True)
    assert 'value="2024-01-01"' in page and "Import the mail already in the mailbox as an archive" in page
    # A bad day is refused in words, and nothing changes.
    future = (utcnow().date() + timedelta(days=2)).isoformat()
    edit = form_data(client, f"/admin/scanners/{account.id}/edit", name="Old box", server_id=str(server.id),
                     login="old@corp.test", actions=["create_email"], search_fields=["contacts"],
                     since_date=future)
    response = client.post(f"/admin/scanners/{account.id}/edit", data=edit)
    assert response.status_code == 200 and "The day is in the future" in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(MailAccount, account.id).since_date == date(2024, 1, 1)


def test_turning_the_archive_import_on_records_the_boundary_anew(app):
    account = make_scanner(make_server(), existing=ExistingMail(archive=True))
    for folder in account.folders:
        folder.archive_below_uid = 40
    db.session.commit()
    fields = {"name": account.name, "server_id": account.server_id, "login": account.login,
              "folders": [(f.name, f.direction) for f in account.folders], "actions": account.action_list,
              "search_fields": account.search_field_list}
    scanners.update_scanner(account.id, **fields, existing=ExistingMail(archive=False))
    assert set(db.session.scalars(select(ScanFolder.archive_below_uid))) == {40}  # kept, but unused while off
    scanners.update_scanner(account.id, **fields)  # no choice given: kept as it is
    assert db.session.get(MailAccount, account.id).archive_existing is False
    scanners.update_scanner(account.id, **fields, existing=ExistingMail(archive=True))
    assert set(db.session.scalars(select(ScanFolder.archive_below_uid))) == {None}


def test_the_cli_adds_a_scanner_with_the_choices_and_refuses_a_bad_day(app, runner):
    server = make_server()
    ok = runner.invoke(args=["scanners", "add", "--server", server.name, "--login", "old@corp.test",
                             "--password", "pw-123456", "--archive", "--since", "2024-06-30"])
    assert ok.exit_code == 0, ok.output
    account = db.session.get(MailAccount, int(ok.output.strip().splitlines()[-1]))
    assert account.archive_existing is True and account.since_date == date(2024, 6, 30)
    bad = runner.invoke(args=["scanners", "add", "--server", server.name, "--login", "new@corp.test",
                              "--password", "pw-123456", "--since", "30/06/2024"])
    assert bad.exit_code != 0 and "YYYY-MM-DD" in bad.output
