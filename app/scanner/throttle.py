"""Loop protection: a sender who writes too much in a short window stops opening tickets."""

from __future__ import annotations

import bisect
from datetime import datetime, timedelta


class SenderWindow:
    """Counts each sender's messages over a sliding window of the messages' own dates.

    ``dates`` maps a sender to the dates of its mail stored before this batch (the scan reads
    them with one query; they are copied, never changed). Senders are compared in lower case. ``limit`` is how many
    messages a sender may have written in the ``window`` before a message and that message still
    opens or reopens tickets; ``limit <= 0`` turns the throttle off.

    The window is measured on the messages' dates, not on when they are stored, so a first scan
    of years of mail does not look like a loop.
    """

    def __init__(self, dates: dict[str, list[datetime]], limit: int, window: timedelta) -> None:
        self.limit = limit
        self.window = window
        self._dates: dict[str, list[datetime]] = {}
        for sender, when in dates.items():
            if sender:
                self._dates.setdefault(sender.strip().lower(), []).extend(when)
        for history in self._dates.values():
            history.sort()

    def allow(self, sender: str | None, when: datetime) -> bool:
        """True when ``sender`` may still act on tickets with a message dated ``when``.

        Every call with a sender counts its message, refused or not, so a loop that keeps
        writing stays throttled. A message without a sender is always allowed (nothing to count
        it against), and so is every message when the throttle is off.
        """
        if not sender or self.limit <= 0:
            return True
        history = self._dates.setdefault(sender.strip().lower(), [])
        recent = len(history) - bisect.bisect_left(history, when - self.window)
        bisect.insort(history, when)
        return recent < self.limit

    def count(self, sender: str, when: datetime) -> int:
        """How many messages of ``sender`` counted so far fall in the window before ``when``, ``when`` included."""
        history = self._dates.get(sender.strip().lower(), [])
        return bisect.bisect_right(history, when) - bisect.bisect_left(history, when - self.window)
