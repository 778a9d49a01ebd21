"""The mail configuration and the ignore filters: validation and changes.

The settings row and the filters are read by the scanner; this module is how
administrators change them. Every message says what is wrong and what to do.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from sqlalchemy import or_, select

from app.extensions import db
from app.models import IgnoreFilter, MailAccount, MailSettings
from app.models.runs import CLOSED_TICKET_POLICIES, FILTER_FIELDS, FILTER_MATCHES, FILTER_STOPS, SPAM_HANDLING
from app.scanner.domains import parse_domains
from app.services import audit
from app.services.validation import (
    FieldErrors,
    RowId,
    clean_bool,
    clean_host,
    clean_int,
    collect,
    db_id,
    has_control_chars,
)

# (field, label, lowest, highest): the numbers of the configuration and their bounds.
NUMBER_FIELDS = (
    ("check_frequency_minutes", "Check frequency (minutes)", 1, 1440),
    ("max_per_run", "Most messages per run", 1, 100_000),
    ("batch_size", "Batch size", 10, 2000),
    ("unread_refresh_seconds", "Unread count refresh (seconds)", 30, 86_400),
    ("loop_max_messages", "Loop limit (messages)", 1, 10_000),
    ("loop_window_minutes", "Loop window (minutes)", 1, 1440),
    ("run_timeout_minutes", "Run time limit (minutes)", 1, 1440),
    ("block_after_failures", "Block after login failures", 1, 100),
)
BOOL_FIELDS = ("show_unread",)
MAX_PUBLIC_DOMAINS = 5000

POLICY_LABELS = {
    "reopen": "Reopen the closed ticket",
    "new_ticket": "Open a new ticket that refers to the closed one",
    "ignore": "Leave the ticket closed (store the e-mail only)",
}
FIELD_LABELS = {
    "from": "Sender address",
    "from_domain": "Sender domain",
    "to": "Recipient address (To / Cc)",
    "subject": "Subject",
    "header": "Header",
}
MATCH_LABELS = {"equals": "equals", "contains": "contains", "regex": "matches the regular expression"}
SPAM_LABELS = {
    "store": "Store it, but never open or reopen a ticket from it",
    "ignore": "Do not store it (it is only counted)",
}
STOP_LABELS = {"store": "Do not store the message", "tickets": "Store it, but never open a ticket from it"}

_HEADER_NAME = re.compile(r"^[!-9;-~]{1,100}$")  # RFC 5322 field name: printable ASCII except ":"


class SettingsError(FieldErrors):
    """The configuration or a filter cannot be saved as asked; a message per field."""


class FilterNotFound(SettingsError):
    """No filter with that id."""


def get_settings() -> MailSettings:
    """The configuration row (created with defaults on first use)."""
    return MailSettings.get()


# --------------------------------------------------------------------------- settings


def clean_domains(text: object) -> str:
    """Our own domains, written with commas, spaces or one per line → "a.test,b.test"."""
    parts = [p for p in re.split(r"[\s,;]+", str(text or "")) if p]
    domains: list[str] = []
    for part in parts:
        part = part.lstrip("@").lower()
        try:
            domain = clean_host(part, "domain")
        except ValueError:
            raise ValueError(f"{part[:60]!r} is not a domain name: write domains such as corp.example, "
                             f"separated by commas.") from None
        if "." not in domain or domain.replace(".", "").isdigit():
            raise ValueError(f"{part[:60]!r} is not a domain name: write domains such as corp.example.")
        if domain not in domains:
            domains.append(domain)
    joined = ",".join(domains)
    if len(joined) > 500:
        raise ValueError("Too many internal domains (at most 500 characters in all).")
    return joined


def clean_public_domains(text: object) -> str:
    """The public mail domains, written with commas, spaces or one per line → one per line, sorted."""
    try:
        domains = parse_domains(str(text or ""))
    except ValueError as exc:
        raise ValueError(f"{exc} Each entry of the public domains must be a domain such as gmail.com.") from None
    if len(domains) > MAX_PUBLIC_DOMAINS:
        raise ValueError(f"At most {MAX_PUBLIC_DOMAINS} public domains.")
    return "\n".join(sorted(domains))


def clean_score(value: object) -> float:
    """A spam score threshold: a number from 0 to 1000, with a decimal point if needed (6, 7.5)."""
    number = str(value if value is not None else "").strip().replace(",", ".")
    if not re.fullmatch(r"\d{1,4}(\.\d{1,2})?", number):
        raise ValueError("The spam score threshold must be a number from 0 to 1000, such as 6 or 7.5.")
    score = float(number)
    if score > 1000:
        raise ValueError(f"The spam score threshold must be from 0 to 1000, not {number}.")
    return score


def _clean_spam(data: Mapping, errors: dict[str, str]) -> dict:
    """The clean spam settings present in ``data``; messages go to ``errors``."""
    clean: dict = {}
    if "spam_handling" in data:
        handling = str(data["spam_handling"] or "").strip()
        if handling not in SPAM_HANDLING:
            errors["spam_handling"] = "Choose what happens to mail the spam filter flagged: store it, or ignore it."
        clean["spam_handling"] = handling
    if "spam_score_threshold" in data:
        clean["spam_score_threshold"] = collect(errors, "spam_score_threshold", clean_score,
                                                data["spam_score_threshold"])
    return clean


def _clean_settings(data: Mapping, errors: dict[str, str]) -> dict:
    """The clean value of every configuration field present in ``data``; messages go to ``errors``."""
    clean: dict = {}
    for key, label, low, high in NUMBER_FIELDS:
        if key in data:
            clean[key] = collect(errors, key, clean_int, data[key], label, low, high)
    for key in BOOL_FIELDS:
        if key in data:
            clean[key] = clean_bool(data[key])
    if "closed_ticket_policy" in data:
        policy = str(data["closed_ticket_policy"] or "").strip()
        if policy not in CLOSED_TICKET_POLICIES:
            errors["closed_ticket_policy"] = "Choose what happens to a closed ticket that receives mail."
        clean["closed_ticket_policy"] = policy
    clean.update(_clean_spam(data, errors))
    if "internal_domains" in data:
        clean["internal_domains"] = collect(errors, "internal_domains", clean_domains, data["internal_domains"])
    if "public_domains" in data:
        clean["public_domains"] = collect(errors, "public_domains", clean_public_domains, data["public_domains"])
    return clean


def _change_text(key: str, old: object, new: object) -> str:
    """One change for the audit log; a list of domains by what was added and removed."""
    if key != "public_domains":
        return f"{key}: {old!r} → {new!r}"
    before, after = set(str(old or "").split()), set(str(new or "").split())
    return (f"public_domains: added {', '.join(sorted(after - before)) or 'none'}; "
            f"removed {', '.join(sorted(before - after)) or 'none'}")


def update_settings(data: Mapping) -> MailSettings:
    """Validate and save the configuration; raises ``SettingsError`` with a message per field."""
    settings = get_settings()
    errors: dict[str, str] = {}
    clean = _clean_settings(data, errors)
    if errors:
        raise SettingsError(errors)
    changes = []
    for key, value in clean.items():
        if getattr(settings, key) != value:
            changes.append(_change_text(key, getattr(settings, key), value))
            setattr(settings, key, value)
    if changes:
        audit.record("mail_config.update", "mail configuration", "; ".join(changes))
    db.session.commit()
    return settings


# --------------------------------------------------------------------------- ignore filters


def _validate_rule(field: str, match: str, value: str, stops: str, header_name: str | None) -> None:
    """Ask the pipeline whether it can use the rule (regex syntax and bounds live there)."""
    # Imported here: the pipeline's filters module is the one authority on what a rule may be.
    from app.scanner.filters import FilterError, validate_rule
    from app.scanner.types import FilterRule

    try:
        validate_rule(FilterRule(id=None, field=field, match=match, value=value, stops=stops,
                                 header_name=header_name))
    except FilterError as exc:
        raise SettingsError(str(exc), "value") from None


def _value_problem(value: str) -> str | None:
    """What is wrong with the value a filter compares with, or None."""
    if not value.strip():
        return "Type the value to compare with."
    if len(value) > 500:
        return "The value is too long (at most 500 characters)."
    if has_control_chars(value):
        return "The value cannot contain control characters or line breaks."
    return None


def _header_name_problem(header_name: str | None) -> str | None:
    """What is wrong with the header name of a filter on a header, or None."""
    if not header_name:
        return "Type the name of the header to look at, e.g. X-Spam-Flag."
    if not _HEADER_NAME.match(header_name):
        return "A header name has only printable characters without spaces or a colon, e.g. X-Spam-Flag."
    return None


def _filter_scope(account_id: object, errors: dict[str, str]) -> int | None:
    """The id of the mailbox a filter is for; None for every mailbox."""
    if account_id in (None, "", 0, "0"):
        return None
    number = db_id(account_id)
    account = db.session.get(MailAccount, number) if number else None
    if account is None:
        errors["account_id"] = "That mailbox does not exist (any more): choose one from the list."
        return None
    return account.id


def validate_filter(data: Mapping) -> dict:
    """Check one ignore filter; returns clean values or raises ``SettingsError``."""
    errors: dict[str, str] = {}
    field = str(data.get("field") or "").strip()
    match = str(data.get("match") or "").strip()
    stops = str(data.get("stops") or "").strip()
    value = str(data.get("value") or "")
    if match != "regex":
        value = value.strip()  # spaces around a regular expression are part of it
    header_name = str(data.get("header_name") or "").strip() or None
    if field not in FILTER_FIELDS:
        errors["field"] = "Choose what the filter looks at: " + ", ".join(FIELD_LABELS.values()).lower() + "."
    if match not in FILTER_MATCHES:
        errors["match"] = "Choose how it compares: equals, contains or regular expression."
    if stops not in FILTER_STOPS:
        errors["stops"] = "Choose what the filter stops: storing the message, or only tickets."
    problems = {"value": _value_problem(value),
                "header_name": _header_name_problem(header_name) if field == "header" else None}
    errors.update({key: problem for key, problem in problems.items() if problem})
    if field != "header":
        header_name = None
    account_id = _filter_scope(data.get("account_id"), errors)
    if not errors:
        _validate_rule(field, match, value, stops, header_name)
    if errors:
        raise SettingsError(errors)
    return {"field": field, "match": match, "value": value, "stops": stops, "header_name": header_name,
            "account_id": account_id, "enabled": clean_bool(data.get("enabled", True))}


def describe_filter(f: IgnoreFilter) -> str:
    """A filter in one sentence, e.g. 'Subject contains "newsletter" → do not store'."""
    what = f"header {f.header_name}" if f.field == "header" else FIELD_LABELS.get(f.field, f.field)
    return f"{what} {MATCH_LABELS.get(f.match, f.match)} \"{f.value}\""


def list_filters() -> list[IgnoreFilter]:
    """Every filter: global ones first, then per mailbox."""
    return list(db.session.scalars(
        select(IgnoreFilter).order_by(IgnoreFilter.account_id.is_not(None), IgnoreFilter.account_id,
                                      IgnoreFilter.id)))


def filters_for(account_id: int | None) -> list[IgnoreFilter]:
    """The enabled filters that apply to a mailbox: the global ones and its own."""
    query = select(IgnoreFilter).where(IgnoreFilter.enabled.is_(True))
    if account_id is None:
        query = query.where(IgnoreFilter.account_id.is_(None))
    else:
        query = query.where(or_(IgnoreFilter.account_id.is_(None), IgnoreFilter.account_id == account_id))
    return list(db.session.scalars(query.order_by(IgnoreFilter.id)))


def get_filter(filter_id: RowId) -> IgnoreFilter:
    """The filter with that id, or ``FilterNotFound``."""
    number = db_id(filter_id)
    row = db.session.get(IgnoreFilter, number) if number else None
    if row is None:
        raise FilterNotFound("There is no such filter (it may have been deleted).")
    return row


def _scope(account_id: int | None) -> str:
    if account_id is None:
        return "all mailboxes"
    account = db.session.get(MailAccount, account_id)
    return f"mailbox {account.name}" if account else f"mailbox {account_id}"


def create_filter(data: Mapping) -> IgnoreFilter:
    """Validate and add an ignore filter."""
    clean = validate_filter(data)
    row = IgnoreFilter(**clean)
    db.session.add(row)
    db.session.flush()
    audit.record("ignore_filter.create", f"ignore filter {row.id}",
                 f"{describe_filter(row)} → stops {row.stops}; {_scope(row.account_id)}")
    db.session.commit()
    return row


def update_filter(filter_id: RowId, data: Mapping) -> IgnoreFilter:
    """Validate and change an ignore filter."""
    row = get_filter(filter_id)
    clean = validate_filter(data)
    changes = []
    for key, value in clean.items():
        if getattr(row, key) != value:
            changes.append(f"{key}: {getattr(row, key)!r} → {value!r}")
            setattr(row, key, value)
    if changes:
        audit.record("ignore_filter.update", f"ignore filter {row.id}", "; ".join(changes))
    db.session.commit()
    return row


def set_filter_enabled(filter_id: RowId, enabled: bool) -> IgnoreFilter:
    """Switch an ignore filter on or off."""
    row = get_filter(filter_id)
    if row.enabled != bool(enabled):
        row.enabled = bool(enabled)
        audit.record("ignore_filter.enable" if enabled else "ignore_filter.disable", f"ignore filter {row.id}",
                     describe_filter(row))
    db.session.commit()
    return row


def delete_filter(filter_id: RowId) -> None:
    """Delete an ignore filter."""
    row = get_filter(filter_id)
    audit.record("ignore_filter.delete", f"ignore filter {row.id}",
                 f"{describe_filter(row)}; {_scope(row.account_id)}")
    db.session.delete(row)
    db.session.commit()


def mailbox_choices() -> list[tuple[int, str]]:
    """(id, name) of every mailbox, for the filter form's scope."""
    return [(row.id, row.name) for row in db.session.execute(
        select(MailAccount.id, MailAccount.name).order_by(MailAccount.name, MailAccount.id))]
