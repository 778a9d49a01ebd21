"""Checks that apply to every record page."""

from __future__ import annotations

from flask import abort, request

from app.records.blueprint import bp

# Ids are 32-bit integers in every database we run on; a larger number names nothing, and passing it on
# would make the driver fail (a 500) instead of the plain "not found" it deserves.
MAX_ID = 2**31 - 1


@bp.before_request
def ids_in_range():
    """Answer 404 for an id in the URL that no row can have."""
    for value in (request.view_args or {}).values():
        if isinstance(value, int) and not 0 < value <= MAX_ID:
            abort(404)
