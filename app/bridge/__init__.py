"""The Roundcube hand-off: open a mailbox, and the server-to-server redeem call."""

from app.bridge import routes  # noqa: F401  (importing a route module registers its routes)
from app.bridge.blueprint import bp

__all__ = ["bp"]
