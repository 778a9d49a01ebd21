"""Operations endpoints without login: /healthz for probes, /metrics for Prometheus (token-protected).

Also the administrators' alert banner (a context processor), so every page
shows open alerts without each blueprint knowing about them.
"""

from flask import Blueprint

bp = Blueprint("ops", __name__)

from app.ops import events, routes  # noqa: E402,F401

events.install()
