"""How long to wait before connecting again: exponential back-off with full jitter.

The wait is a random time between 0 and ``min(longest, first * 2**attempts)``, so a thousand
watches that lost their server together come back spread out instead of all at once. The count
of attempts starts again only after a connection that *lived* (stayed up at least ``healthy``
seconds): a server that drops every idle connection after a few seconds makes the waits grow as
for a server that refuses us, and never a busy loop. ``shortest`` puts a floor under the jitter
(a refused login is not tried again within seconds).
"""

from __future__ import annotations

import random


class Backoff:
    """The waits of one watch between its connections."""

    def __init__(self, first: float = 1.0, longest: float = 20.0, healthy: float = 60.0,
                 rng: random.Random | None = None, *, shortest: float = 0.0) -> None:
        self.first, self.longest, self.healthy, self.shortest = first, longest, healthy, shortest
        self.attempts = 0
        self._rng = rng or random.Random()

    def ceiling(self) -> float:
        """The longest the next wait may be."""
        return min(self.longest, self.first * (2 ** min(self.attempts, 30)))

    def next_wait(self, lived: float) -> float:
        """Seconds to wait after a connection that stayed up ``lived`` seconds (0: it never came up)."""
        if lived >= self.healthy:
            self.attempts = 0
        wait = self._rng.uniform(min(self.shortest, self.ceiling()), self.ceiling())
        self.attempts += 1
        return wait

    def reset(self) -> None:
        """Forget the failures (the watch was stopped on purpose)."""
        self.attempts = 0
