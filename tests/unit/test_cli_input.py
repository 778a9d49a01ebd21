"""Bad input on the command line gets a sentence and an exit code, never a traceback or a stored bad value."""

from __future__ import annotations

import pytest

from app.extensions import db
from app.models import User
from tests import factories

HUGE = "99999999999999999999"


def _refused(result, *words: str) -> None:
    assert result.exit_code not in (0, None), result.output
    # A refusal in words exits through SystemExit; anything else is a crash with a traceback.
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    for word in words:
        assert word in result.output, result.output


@pytest.mark.parametrize("args", [
    ["scanners", "run", HUGE, "--json"], ["scanners", "run", "--", "-1"], ["scanners", "run", "0x10"],
    ["scanners", "enable", HUGE], ["scanners", "disable", HUGE], ["scanners", "test-login", HUGE],
    ["logs", "list", "--mailbox", HUGE],
])
def test_ids_out_of_range_are_refused_in_words(runner, args):
    _refused(runner.invoke(args=args), "Invalid value")


def test_a_huge_server_id_is_looked_up_as_a_name(runner):
    result = runner.invoke(args=["scanners", "add", "--server", HUGE, "--login", "x@corp.test"])
    _refused(result, "There is no mail server named")


@pytest.mark.parametrize(("username", "said"), [
    ("bad\x1bname", "control characters"), ("tab\tname", "control characters"), ("nl\nname", "control characters"),
    ("rtl\u202ename", "control characters"), ("", "1 to 80"), ("x" * 81, "1 to 80"),
])
def test_users_create_refuses_names_the_login_form_would_refuse(runner, username, said):
    _refused(runner.invoke(args=["users", "create", username, "--password", "long enough pw"]), said)
    assert db.session.query(User).count() == 0


@pytest.mark.parametrize("email", ["not-an-email<script>", "a@b", "two@@corp.test", "x@corp.test\x00y"])
def test_users_create_refuses_an_address_that_is_not_one(runner, email):
    result = runner.invoke(args=["users", "create", "carol", "--password", "long enough pw", "--email", email])
    _refused(result, "not an e-mail address")
    assert db.session.query(User).count() == 0


def test_users_create_refuses_a_name_taken_in_another_case_and_a_password_the_form_cannot_send(runner):
    factories.user("alice")
    _refused(runner.invoke(args=["users", "create", " Alice", "--password", "long enough pw"]), "taken")
    _refused(runner.invoke(args=["users", "create", "zed", "--password", "p" * 201]), "at most 200")


def test_users_create_stores_a_clean_user_who_can_log_in(runner, client):
    result = runner.invoke(args=["users", "create", "Carol", "--password", "long enough pw",
                                 "--email", " Carol@Corp.test "])
    assert result.exit_code == 0, result.output
    user = db.session.query(User).one()
    assert (user.username, user.email) == ("Carol", "carol@corp.test")
    token = factories.csrf_from(client.get("/login"))
    answer = client.post("/login", data={"username": "carol ", "password": "long enough pw", "csrf_token": token})
    assert answer.status_code == 302


def test_users_disable_set_password_and_end_sessions_from_the_command_line(runner):
    alice = factories.user("alice")
    version = alice.session_version
    for args, said in ((["users", "end-sessions", "ALICE"], "has ended"),
                       (["users", "set-password", "alice", "--password", "another long one"], "changed"),
                       (["users", "disable", "alice"], "disabled"), (["users", "enable", "alice"], "enabled")):
        result = runner.invoke(args=args)
        assert result.exit_code == 0 and said in result.output, result.output
    db.session.refresh(alice)
    assert alice.session_version == version + 3 and alice.is_active and alice.check_password("another long one")
    assert "disabled" not in runner.invoke(args=["users", "list"]).output
    _refused(runner.invoke(args=["users", "disable", "nobody"]), "There is no user named")
    _refused(runner.invoke(args=["users", "set-password", "alice", "--password", "short"]), "at least 8")
