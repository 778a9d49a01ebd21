"""Loop protection: a sender who writes too much in a short window stops opening tickets."""

from __future__ import annotations


class SenderThrottle:
    """Counts messages per sender over the recent window plus the batch being processed.

    ``recent_counts`` maps a normalized sender address to how many messages it sent in the window
    before this batch (the service counts them with one query). ``limit`` is how many messages a
    sender may write in the window and still open or reopen tickets; ``limit <= 0`` turns the
    throttle off.
    """

    def __init__(self, recent_counts: dict[str, int], limit: int) -> None:
        self.limit = limit
        self._counts: dict[str, int] = {}
        for addr, n in (recent_counts or {}).items():
            if addr:
                key = addr.strip().lower()
                self._counts[key] = self._counts.get(key, 0) + int(n)

    def allow(self, sender: str | None) -> bool:
        """True when ``sender`` may still open tickets; counts this message either way.

        Every call counts one message, refused or not, so a loop that keeps writing stays
        throttled. A message without a sender is always allowed (nothing to count it against).
        """
        if not sender:
            return True
        key = sender.strip().lower()
        seen = self._counts.get(key, 0)
        self._counts[key] = seen + 1
        if self.limit <= 0:
            return True
        return seen < self.limit

    def count(self, sender: str) -> int:
        """How many messages of ``sender`` were counted so far (window + batch)."""
        return self._counts.get(sender.strip().lower(), 0)
