"""The Roundcube hand-off: open a mailbox (its inbox, a compose window, one message), and the redeem call."""

from app.bridge import compose, routes  # noqa: F401  (importing a route module registers its routes)
from app.bridge.blueprint import bp

__all__ = ["bp"]
