"""How pages write times: the ``|utc`` filter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from flask import render_template_string

from app.formatting import MISSING, utc


def test_utc_says_utc_with_and_without_seconds():
    moment = datetime(2026, 12, 3, 14, 5, 7)
    assert utc(moment) == "2026-12-03 14:05 UTC"
    assert utc(moment, seconds=True) == "2026-12-03 14:05:07 UTC"


def test_utc_converts_an_aware_time_and_shows_a_missing_one_as_a_dash():
    berlin = timezone(timedelta(hours=1))
    assert utc(datetime(2026, 12, 3, 15, 5, tzinfo=berlin)) == "2026-12-03 14:05 UTC"
    assert utc(datetime(2026, 12, 3, 14, 5, tzinfo=UTC)) == "2026-12-03 14:05 UTC"
    assert utc(None) == MISSING == "—"


def test_utc_is_a_filter_of_every_template(app):
    with app.test_request_context():
        html = render_template_string("{{ t|utc }} / {{ t|utc(seconds=True) }}", t=datetime(2026, 1, 2, 3, 4, 5))
    assert html == "2026-01-02 03:04 UTC / 2026-01-02 03:04:05 UTC"

