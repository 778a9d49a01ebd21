"""The user's start page and Virtual desk."""

from app.desk import mailbox, routes  # noqa: F401  (importing a route module registers its routes)
from app.desk.blueprint import bp

__all__ = ["bp"]
