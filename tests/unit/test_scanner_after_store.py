"""The scanner's *After storing* option without a mail server: its checks, the form and the list."""

from __future__ import annotations

import pytest

from app.extensions import db
from app.models import PendingMailAction
from app.services import scanner_fields, scanners
from app.services.scanners import ScannerError
from tests.unit.test_scanners_admin import SECRET, form_data, make_scanner, make_server


@pytest.fixture
def server(app):
    return make_server()


def clean(action, folder=None, folders=(("INBOX", "incoming"),)):
    errors: dict[str, str] = {}
    result = scanner_fields.clean_after_store(action, folder, list(folders), errors)
    return result, errors


def test_choices_are_checked_in_words():
    assert clean(None) == (("keep", None), {})
    assert clean("Mark_Read", "ignored") == (("mark_read", None), {})  # the folder belongs to a move only
    assert clean("delete") == (("delete", None), {})
    (_, errors) = clean("shred")
    assert errors["after_store"].startswith("Unknown choice for after storing: shred. Choose from: Leave it")


def test_a_move_needs_a_folder_the_scanner_does_not_read():
    assert clean("move", "  Done ") == (("move", "Done"), {})
    assert "Choose the folder" in clean("move", " ")[1]["after_store_folder"]
    assert "control characters" in clean("move", "Bad\nName")[1]["after_store_folder"]
    problem = clean("move", "inbox")[1]["after_store_folder"]
    assert "reads the folder 'INBOX' itself" in problem and "read every message twice" in problem


def test_the_service_refuses_a_bad_choice_and_saves_nothing(app, server):
    with pytest.raises(ScannerError) as err:
        make_scanner(server, after_store="move", after_store_folder="INBOX")
    assert "after_store_folder" in err.value.errors
    assert scanners.list_scanners() == []


def test_the_form_offers_the_option_and_keeps_it_by_default(app, logged_in, server):
    page = logged_in.get("/admin/scanners/new").get_data(as_text=True)
    assert "After storing a message" in page and "Move to folder" in page
    assert '<option selected value="keep">Leave it as it is</option>' in page
    data = form_data(logged_in, "/admin/scanners/new", name="Sales", server_id=str(server.id),
                     login="sales@corp.test", password=SECRET, actions=["create_email"],
                     search_fields=["contacts"], assignee_id="0", after_store="mark_read")
    response = logged_in.post("/admin/scanners/new", data=data)
    assert response.status_code == 302
    (account,) = scanners.list_scanners()
    assert (account.after_store, account.after_store_folder) == ("mark_read", None)
    listing = logged_in.get("/admin/scanners").get_data(as_text=True)
    assert "After storing:\n        mark it as read" in listing


def test_the_form_shows_the_problem_next_to_the_field(app, logged_in, server):
    data = form_data(logged_in, "/admin/scanners/new", name="Sales", server_id=str(server.id),
                     login="sales@corp.test", password=SECRET, actions=["create_email"],
                     search_fields=["contacts"], assignee_id="0", after_store="move", after_store_folder="")
    page = logged_in.post("/admin/scanners/new", data=data).get_data(as_text=True)
    assert "Choose the folder stored messages are moved to." in page
    assert scanners.list_scanners() == []


def test_moving_the_scanner_to_another_mailbox_forgets_the_actions_it_owed(app, server):
    account = make_scanner(server, after_store="delete")
    db.session.add(PendingMailAction(account_id=account.id, folder="INBOX", uidvalidity=1, uid=5, action="delete"))
    db.session.commit()
    scanners.update_scanner(account.id, name="Sales", server_id=server.id, login="sales@corp.test",
                            folders=[("INBOX", "incoming")], actions="create_email", search_fields="contacts")
    assert db.session.query(PendingMailAction).count() == 1  # same mailbox: still owed
    scanners.update_scanner(account.id, name="Sales", server_id=server.id, login="other@corp.test",
                            folders=[("INBOX", "incoming")], actions="create_email", search_fields="contacts")
    assert db.session.query(PendingMailAction).count() == 0
    assert db.session.get(type(account), account.id).after_store == "delete"  # not given: kept


def test_deleting_the_scanner_deletes_what_it_owed(app, server):
    account = make_scanner(server, after_store="mark_read")
    db.session.add(PendingMailAction(account_id=account.id, folder="INBOX", uidvalidity=1, uid=5, action="mark_read"))
    db.session.commit()
    scanners.delete_scanner(account.id)
    assert db.session.query(PendingMailAction).count() == 0


@pytest.fixture
def logged_in(client, auth, admin):
    auth.login("admin")
    return client
