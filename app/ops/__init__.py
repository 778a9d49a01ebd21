"""Operations endpoints without login: /healthz for probes, /metrics for Prometheus (token-protected).

Also the administrators' alert banner (a context processor), so every page
shows open alerts without each blueprint knowing about them.
"""

from app.ops import events, routes  # noqa: F401  (importing a route module registers its routes)
from app.ops.blueprint import bp

__all__ = ["bp"]

events.install()
