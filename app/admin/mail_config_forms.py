"""Forms of Mail tools → Mail configuration: the settings and the ignore filters.

The forms only carry the values; app.services.mail_settings validates them,
so every message is worded in one place.
"""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, SelectChoice, SelectField, StringField, TextAreaField

from app.models.runs import CLOSED_TICKET_POLICIES, FILTER_FIELDS, FILTER_MATCHES, FILTER_STOPS, SPAM_HANDLING
from app.services.mail_settings import FIELD_LABELS, NUMBER_FIELDS, POLICY_LABELS, SPAM_LABELS, STOP_LABELS

MATCH_CHOICES = {"equals": "equals", "contains": "contains", "regex": "regular expression"}


def _number(label: str, low: int, high: int, help_text: str) -> StringField:
    # Text, not IntegerField: the service words the message for "abc" or 0 itself.
    return StringField(label, render_kw={"inputmode": "numeric"},
                       description=f"{help_text} ({low}–{high}).")


_BOUNDS = {key: (label, low, high) for key, label, low, high in NUMBER_FIELDS}


class MailSettingsForm(FlaskForm):
    """The mail configuration: scanning limits, unread counts, closed tickets, loops, internal domains."""

    check_frequency_minutes = _number(*_BOUNDS["check_frequency_minutes"],
                                      "How often each enabled scanner checks for new mail")
    max_per_run = _number(*_BOUNDS["max_per_run"],
                          "The most messages one run of one scanner downloads, oldest first; the rest is read "
                          "at once by the next run, after the other mailboxes' waiting scans")
    batch_size = _number(*_BOUNDS["batch_size"], "Messages fetched and saved together; progress is committed "
                                                  "after each batch")
    show_unread = BooleanField("Show the number of unread messages on the mailbox buttons")
    unread_refresh_seconds = _number(*_BOUNDS["unread_refresh_seconds"], "How often that number is refreshed")
    closed_ticket_policy = SelectField("A closed ticket that receives mail", validate_choice=False,
                                       choices=[SelectChoice(p, POLICY_LABELS[p]) for p in CLOSED_TICKET_POLICIES])
    loop_max_messages = _number(*_BOUNDS["loop_max_messages"],
                                "A sender who writes more than this many messages within the window stops "
                                "creating tickets (mail loops)")
    loop_window_minutes = _number(*_BOUNDS["loop_window_minutes"], "The loop window")
    run_timeout_minutes = _number(*_BOUNDS["run_timeout_minutes"],
                                  "A run longer than this alerts the administrators")
    block_after_failures = _number(*_BOUNDS["block_after_failures"],
                                   "Consecutive login failures after which a scanner is blocked")
    internal_domains = TextAreaField("Our own domains",
                                     description="Comma separated, e.g. corp.example, corp-mail.example. Mail "
                                                 "between these domains is internal.")
    public_domains = TextAreaField("Public mail domains",
                                   description="One per line or separated by commas. Mail from or to these "
                                               "domains (and their subdomains) never binds to an organization by "
                                               "its domain, and no organization can have one of them; known "
                                               "addresses there still bind to their contact.")

    spam_handling = SelectField("Mail the server's spam filter flagged", validate_choice=False,
                                choices=[SelectChoice(h, SPAM_LABELS[h]) for h in SPAM_HANDLING],
                                description="Flagged by X-Spam-Flag, X-Spam-Status, rspamd's action or score, or "
                                            "found in a Junk folder. Either way it is counted in the download "
                                            "history and never opens or reopens a ticket.")
    spam_score_threshold = StringField("Spam score threshold", render_kw={"inputmode": "decimal"},
                                       description="A message whose rspamd score (X-Spamd-Result, "
                                                   "X-Rspamd-Score) is above this is spam (0–1000).")

    DATA_FIELDS = ("check_frequency_minutes", "max_per_run", "batch_size", "show_unread", "unread_refresh_seconds",
                   "closed_ticket_policy", "loop_max_messages", "loop_window_minutes", "run_timeout_minutes",
                   "block_after_failures", "internal_domains", "public_domains", "spam_handling",
                   "spam_score_threshold")

    def values(self) -> dict:
        """The submitted values, keyed like the service's fields."""
        return {name: self[name].data for name in self.DATA_FIELDS}


class FilterForm(FlaskForm):
    """One ignore filter: what it looks at, how it compares, what it stops, and where."""

    account_id = SelectField("Applies to", coerce=str, validate_choice=False, default="")
    field = SelectField("Looks at", validate_choice=False,
                        choices=[SelectChoice(f, FIELD_LABELS[f]) for f in FILTER_FIELDS])
    header_name = StringField("Header name", description="Only when it looks at a header, e.g. List-Id.")
    match = SelectField("Compares", validate_choice=False,
                        choices=[SelectChoice(m, MATCH_CHOICES[m]) for m in FILTER_MATCHES])
    value = StringField("Value", description="Case is ignored. A regular expression is searched anywhere in "
                                             "the text, e.g. ^newsletter@.")
    stops = SelectField("Stops", validate_choice=False, choices=[SelectChoice(s, STOP_LABELS[s]) for s in FILTER_STOPS])
    enabled = BooleanField("Enabled", default=True)

    DATA_FIELDS = ("account_id", "field", "header_name", "match", "value", "stops", "enabled")

    def values(self) -> dict:
        """The submitted values, keyed like the service's fields."""
        return {name: self[name].data for name in self.DATA_FIELDS}
