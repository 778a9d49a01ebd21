"""Login, logout and the role checks every other blueprint uses."""

from app.auth import routes  # noqa: F401  (importing a route module registers its routes)
from app.auth.blueprint import bp

__all__ = ["bp"]
