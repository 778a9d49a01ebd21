"""Mail configuration: settings saved and bounded, ignore filters validated, global and per mailbox."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry, IgnoreFilter, MailAccount, MailServer, MailSettings
from app.services import mail_settings
from app.services.mail_settings import SettingsError
from tests import factories

SETTINGS = {
    "check_frequency_minutes": "15", "max_per_run": "2000", "batch_size": "250", "show_unread": "y",
    "unread_refresh_seconds": "120", "closed_ticket_policy": "new_ticket", "loop_max_messages": "7",
    "loop_window_minutes": "20", "run_timeout_minutes": "45", "block_after_failures": "4",
    "internal_domains": "Corp.Test, @corp-mail.test\nCORP.test", "spam_handling": "ignore",
    "spam_score_threshold": "7,5",
}
FILTER = {"account_id": "", "field": "subject", "header_name": "", "match": "contains", "value": "newsletter",
          "stops": "store", "enabled": "y"}


def _mailbox(name="Support") -> MailAccount:
    server = MailServer(name=f"srv-{name}", imap_host="imap.corp.test", smtp_host="smtp.corp.test")
    db.session.add(server)
    db.session.flush()
    account = MailAccount(name=name, server_id=server.id, login=f"{name.lower()}@corp.test")
    db.session.add(account)
    db.session.commit()
    return account


def _page_token(client) -> str:
    page = client.get("/admin/mail-config")
    assert page.status_code == 200
    return factories.csrf_from(page)


# --------------------------------------------------------------------------- settings


def test_settings_are_saved_through_the_page(client, auth, admin):
    auth.login("admin")
    response = client.post("/admin/mail-config", data={**SETTINGS, "csrf_token": _page_token(client)})
    assert response.status_code == 302
    row = db.session.get(MailSettings, 1)
    db.session.refresh(row)
    assert (row.check_frequency_minutes, row.max_per_run, row.batch_size) == (15, 2000, 250)
    assert row.unread_refresh_seconds == 120 and row.show_unread is True
    assert row.closed_ticket_policy == "new_ticket"
    assert (row.loop_max_messages, row.loop_window_minutes) == (7, 20)
    assert (row.run_timeout_minutes, row.block_after_failures) == (45, 4)
    assert row.internal_domains == "corp.test,corp-mail.test"
    assert (row.spam_handling, row.spam_score_threshold) == ("ignore", 7.5)
    assert db.session.scalar(select(AuditEntry.action)) == "mail_config.update"
    page = client.get("/admin/mail-config")
    assert b'value="2000"' in page.data


def test_unticked_show_unread_is_saved_as_off(client, auth, admin):
    auth.login("admin")
    data = {k: v for k, v in SETTINGS.items() if k != "show_unread"}
    client.post("/admin/mail-config", data={**data, "csrf_token": _page_token(client)})
    assert db.session.scalar(select(MailSettings.show_unread)) is False


@pytest.mark.parametrize("key, value, words", [
    ("check_frequency_minutes", "0", "from 1 to 1440"),
    ("check_frequency_minutes", "1441", "from 1 to 1440"),
    ("max_per_run", "100001", "from 1 to 100000"),
    ("max_per_run", "abc", "whole number"),
    ("batch_size", "5", "from 10 to 2000"),
    ("batch_size", "99999999999999999999", "whole number"),
    ("loop_window_minutes", "-3", "from 1 to 1440"),
    ("internal_domains", "corp.test, not a domain!", "is not a domain name"),
    ("internal_domains", "<script>", "is not a domain name"),
    ("closed_ticket_policy", "explode", "closed ticket"),
    ("spam_handling", "delete", "spam filter flagged"),
    ("spam_score_threshold", "abc", "spam score threshold must be a number from 0 to 1000"),
    ("spam_score_threshold", "-1", "spam score threshold must be a number from 0 to 1000"),
    ("spam_score_threshold", "1e9", "spam score threshold must be a number from 0 to 1000"),
    ("spam_score_threshold", "5000", "from 0 to 1000, not 5000"),
])
def test_bad_settings_are_refused_with_a_message(client, auth, admin, key, value, words):
    auth.login("admin")
    token = _page_token(client)
    saved = {**SETTINGS, "check_frequency_minutes": "33", "csrf_token": token}
    assert client.post("/admin/mail-config", data=saved).status_code == 302
    response = client.post("/admin/mail-config", data={**saved, "batch_size": "100", key: value})
    assert response.status_code == 200
    assert words in response.data.decode()
    db.session.expire_all()
    row = db.session.get(MailSettings, 1)
    # Nothing half-saved: neither the bad field nor the good one sent with it.
    assert (row.check_frequency_minutes, row.batch_size) == (33, 250)


def test_settings_service_reports_every_bad_field(app):
    with pytest.raises(SettingsError) as info:
        mail_settings.update_settings({"check_frequency_minutes": "0", "batch_size": "x", "max_per_run": ""})
    assert set(info.value.errors) == {"check_frequency_minutes", "batch_size", "max_per_run"}


# --------------------------------------------------------------------------- filters


def test_global_filter_is_added_and_listed(client, auth, admin):
    auth.login("admin")
    response = client.post("/admin/mail-config/filters", data={**FILTER, "csrf_token": _page_token(client)})
    assert response.status_code == 302
    row = db.session.scalar(select(IgnoreFilter))
    assert (row.account_id, row.field, row.match, row.value, row.stops, row.enabled) == \
        (None, "subject", "contains", "newsletter", "store", True)
    page = client.get("/admin/mail-config")
    assert b"newsletter" in page.data and b"All mailboxes" in page.data


def test_bad_regex_is_refused_with_a_message(client, auth, admin):
    auth.login("admin")
    response = client.post("/admin/mail-config/filters", data={
        **FILTER, "match": "regex", "value": "(unclosed", "csrf_token": _page_token(client)})
    assert response.status_code == 200
    assert b"field-error" in response.data
    assert db.session.scalar(select(IgnoreFilter)) is None


def test_catastrophic_regex_is_refused(app):
    with pytest.raises(SettingsError) as info:
        mail_settings.create_filter({**FILTER, "match": "regex", "value": "(a+)+$"})
    assert str(info.value)
    assert db.session.scalar(select(IgnoreFilter)) is None


def test_header_filter_needs_a_header_name(app):
    with pytest.raises(SettingsError) as info:
        mail_settings.create_filter({**FILTER, "field": "header", "header_name": ""})
    assert "header_name" in info.value.errors
    row = mail_settings.create_filter({**FILTER, "field": "header", "header_name": "X-Spam-Flag",
                                       "match": "equals", "value": "YES", "stops": "tickets"})
    assert row.header_name == "X-Spam-Flag" and row.stops == "tickets"


def test_header_name_is_dropped_for_other_fields(app):
    row = mail_settings.create_filter({**FILTER, "header_name": "X-Ignored"})
    assert row.header_name is None


def test_filter_per_mailbox_applies_only_to_it(client, auth, admin):
    support, sales = _mailbox("Support"), _mailbox("Sales")
    auth.login("admin")
    page = client.get("/admin/mail-config")
    assert b"Mailbox Support" in page.data
    token = factories.csrf_from(page)
    client.post("/admin/mail-config/filters", data={**FILTER, "value": "global", "csrf_token": token})
    response = client.post("/admin/mail-config/filters", data={
        **FILTER, "account_id": str(support.id), "field": "from_domain", "match": "equals",
        "value": "spam.test", "csrf_token": token})
    assert response.status_code == 302
    assert {f.value for f in mail_settings.filters_for(support.id)} == {"global", "spam.test"}
    assert {f.value for f in mail_settings.filters_for(sales.id)} == {"global"}
    assert "Mailbox Support" in client.get("/admin/mail-config").data.decode()


def test_filter_for_unknown_mailbox_is_refused(client, auth, admin):
    auth.login("admin")
    for bad in ("424242", "abc", "99999999999999999999"):
        response = client.post("/admin/mail-config/filters", data={
            **FILTER, "account_id": bad, "csrf_token": _page_token(client)})
        assert response.status_code == 200
        assert b"does not exist" in response.data
    assert db.session.scalar(select(IgnoreFilter)) is None


def test_filter_is_edited_toggled_and_deleted(client, auth, admin):
    row = mail_settings.create_filter(FILTER)
    auth.login("admin")
    page = client.get(f"/admin/mail-config/filters/{row.id}/edit")
    assert page.status_code == 200 and b"newsletter" in page.data
    token = factories.csrf_from(page)
    response = client.post(f"/admin/mail-config/filters/{row.id}/edit", data={
        **FILTER, "match": "regex", "value": r"^promo\b", "csrf_token": token})
    assert response.status_code == 302
    db.session.refresh(row)
    assert (row.match, row.value) == ("regex", r"^promo\b")
    bad = client.post(f"/admin/mail-config/filters/{row.id}/edit", data={
        **FILTER, "match": "regex", "value": "[z-a]", "csrf_token": token})
    assert bad.status_code == 200 and b"field-error" in bad.data
    db.session.refresh(row)
    assert row.value == r"^promo\b"
    client.post(f"/admin/mail-config/filters/{row.id}/toggle", data={"csrf_token": token})
    db.session.refresh(row)
    assert row.enabled is False
    assert mail_settings.filters_for(None) == []
    client.post(f"/admin/mail-config/filters/{row.id}/delete", data={"csrf_token": token})
    assert db.session.scalar(select(IgnoreFilter)) is None
    actions = list(db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
    assert actions == ["ignore_filter.create", "ignore_filter.update", "ignore_filter.disable",
                       "ignore_filter.delete"]


def test_filter_changes_need_csrf(client, auth, admin):
    row = mail_settings.create_filter(FILTER)
    auth.login("admin")
    assert factories.csrf_refused(client.post("/admin/mail-config/filters", data=FILTER))
    assert factories.csrf_refused(client.post(f"/admin/mail-config/filters/{row.id}/delete"))
    assert db.session.scalar(select(IgnoreFilter.id)) == row.id


HOSTILE = ["", "x" * 5000, "\x00\x07", "<script>alert(1)</script>", "' OR 1=1 --", "🙂", "\r\nX: y", "-1",
           "99999999999999999999"]


def test_hostile_filter_input_gives_messages_not_500s(client, auth, admin):
    auth.login("admin")
    token = _page_token(client)
    for value in HOSTILE:
        for key in FILTER:
            response = client.post("/admin/mail-config/filters", data={**FILTER, key: value, "csrf_token": token})
            assert response.status_code in (200, 302), (key, value)
            if response.status_code == 200:
                assert b"field-error" in response.data or b"flash-error" in response.data, (key, value)
                assert db.session.scalar(select(IgnoreFilter)) is None, (key, value)
            else:
                db.session.execute(IgnoreFilter.__table__.delete())
                db.session.commit()
    assert b"<script>alert(1)</script>" not in client.get("/admin/mail-config").data


def test_hostile_settings_input_gives_messages_not_500s(client, auth, admin):
    auth.login("admin")
    token = _page_token(client)
    for value in HOSTILE:
        for key in SETTINGS:
            response = client.post("/admin/mail-config", data={**SETTINGS, key: value, "csrf_token": token})
            assert response.status_code in (200, 302), (key, value)


def test_ordinary_user_gets_403(client, auth, user):
    row = mail_settings.create_filter(FILTER)
    auth.login("alice")
    assert client.get("/admin/mail-config").status_code == 403
    token = factories.csrf_from(client.get("/"))
    assert client.post(f"/admin/mail-config/filters/{row.id}/delete", data={"csrf_token": token}).status_code == 403
    assert db.session.scalar(select(IgnoreFilter.id)) == row.id
