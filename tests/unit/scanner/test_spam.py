"""Spam: the verdicts of the server's filter (SpamAssassin, rspamd) and Junk folders, without a database."""

from __future__ import annotations

import pytest

from app.scanner.spam import is_junk_folder, spam_reason
from tests.unit.scanner.helpers import message


def flagged(*headers: tuple[str, str], threshold: float = 6.0, junk: bool = False) -> str | None:
    return spam_reason(message(headers=list(headers)), threshold, junk)


@pytest.mark.parametrize("headers,words", [
    ((("x-spam-flag", "YES"),), "X-Spam-Flag: YES"),
    ((("x-spam-flag", "yes"),), "X-Spam-Flag: YES"),
    ((("x-spam-status", "Yes, score=7.3 required=5.0 tests=BAYES_99"),), "X-Spam-Status: Yes, score=7.3"),
    ((("x-rspamd-action", "reject"),), "X-Rspamd-Action: reject"),
    ((("x-rspamd-action", "add header"),), "X-Rspamd-Action: add header"),
    ((("x-rspamd-action", "rewrite  subject"),), "X-Rspamd-Action: rewrite subject"),
    ((("x-spamd-result", "default: False [7.50 / 15.00]; BAYES_SPAM(5.10)"),), "spam score 7.5 above 6"),
    ((("x-rspamd-score", "12.25"),), "spam score 12.25 above 6"),
])
def test_what_the_filter_flagged_is_spam(headers, words):
    reason = flagged(*headers)
    assert reason is not None and words in reason


@pytest.mark.parametrize("headers", [
    (),
    (("x-spam-flag", "NO"),),
    (("x-spam-status", "No, score=-1.0 required=5.0"),),
    (("x-rspamd-action", "no action"),),
    (("x-rspamd-action", "soft reject"),),  # greylisting, not a verdict
    (("x-spamd-result", "default: False [5.99 / 15.00]"),),
    (("x-spamd-result", "default: False [6.00 / 15.00]"),),  # at the threshold is not above it
    (("x-spamd-result", "garbage"),),
    (("x-rspamd-score", "n/a"),),
])
def test_clean_or_unreadable_verdicts_are_not_spam(headers):
    assert flagged(*headers) is None


def test_the_threshold_is_the_configured_one():
    result = ("x-spamd-result", "default: False [7.50 / 15.00]")
    assert flagged(result, threshold=6) is not None
    assert flagged(result, threshold=10) is None
    assert flagged(("x-rspamd-score", "-3"), threshold=0) is None


def test_only_the_topmost_verdict_counts():
    # Our server said "No" on top; the sender's own server's "Yes" further down says nothing about us.
    assert flagged(("x-spam-status", "No, score=0.1"), ("x-spam-status", "Yes, score=9")) is None
    assert flagged(("x-spam-flag", "YES"), ("x-spam-flag", "NO")) == "X-Spam-Flag: YES"


def test_a_junk_folder_makes_everything_in_it_spam():
    assert flagged(junk=True) == "it is in a Junk folder"
    assert flagged(("x-spam-flag", "YES"), junk=True) == "X-Spam-Flag: YES"  # the header is more telling


@pytest.mark.parametrize("name,attributes,junk", [
    ("Junk", (), True),
    ("INBOX.Spam", (), True),
    ("[Gmail]/Spam", (), True),
    ("Junk E-mail", (), True),
    ("Quarantine", ("\\HasNoChildren", "\\Junk"), True),
    ("Quarantine", ("\\HASNOCHILDREN", "\\JUNK"), True),
    ("Quarantine", ("\\HasNoChildren",), False),
    ("INBOX", (), False),
    ("Spam reports", (), False),
    ("Junkyard", (), False),
])
def test_junk_folders_by_special_use_or_name(name, attributes, junk):
    assert is_junk_folder(name, frozenset(attributes)) is junk
