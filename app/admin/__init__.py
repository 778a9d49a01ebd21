"""Administration: Mail tools and Logs. Every route here is for administrators only."""

from app.admin import audit, autologin, handoffs, history, mail_config, oauth, queues, scanners, servers, users, watch  # noqa: F401  (importing a route module registers its routes)
from app.admin.blueprint import bp

__all__ = ["bp"]
