"""What a demo seed did, and how it fails."""

from __future__ import annotations

from dataclasses import dataclass, field


class DemoError(RuntimeError):
    """The demo could not be set up; the message says what to do."""


@dataclass
class SeedReport:
    """What the seed created this time (and what already existed)."""

    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    appended: int = 0
    already_there: int = 0
    account_id: int | None = None

    def note(self, what: str, was_created: bool) -> None:
        """Count ``what`` as created now, or as already there."""
        (self.created if was_created else self.existing).append(what)
