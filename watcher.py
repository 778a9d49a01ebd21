"""Run a watcher: ``python watcher.py``.

It keeps IDLE or NOTIFY connections open to the mailboxes of the enabled scanners (polling the
folders of servers that offer neither) and enqueues a scan on the ``scan`` queue the moment a
server reports new mail; ``worker.py`` runs the scans. Several watchers, on one host or several,
share the scanners through leases in Redis. SIGTERM or Ctrl-C logs out and hands the scanners
back to the other watchers at once.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from app import create_app
from app.watch.engine import Watcher


async def _watch(app) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    watcher = Watcher(app)
    logging.getLogger("watcher").info("watcher %s started", watcher.id)
    await watcher.run(stop)


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and watch until stopped."""
    parser = argparse.ArgumentParser(description="Corporate Mailboxes watcher: IMAP IDLE/NOTIFY push to the scan "
                                                 "queue.")
    parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app()
    if app.config.get("QUEUE_MODE") != "redis":
        print("watcher.py: QUEUE_MODE is not 'redis': the watcher queues scans for the workers on Redis, "
              "and there are none to queue for. Unset QUEUE_MODE (or set it to redis).", file=sys.stderr)
        return 2
    asyncio.run(_watch(app))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
