"""Mail as it arrives: the watcher keeps connections open to the scanners' mailboxes and enqueues a
scan the moment a server reports new mail.

Read it in this order:

1. ``engine.Watcher``: this process's share of the scanners (leases in Redis, ``leases``), the
   scanners read from the database every few seconds (``targets``), the scans owed and enqueued.
2. ``mailbox.MailboxWatch``: one scanner's connections, with NOTIFY, IDLE or polling, and its
   reconnects (``backoff``).
3. ``imap``: the small asyncio IMAP client they use (why our own: its docstring, with the figures).
4. ``state`` and ``telemetry``: what operators see (each scanner's watch state; the watchers'
   connections, reconnects and the delivery latency), kept in Redis with a time to live.

``watcher.py`` at the top of the repository runs a ``Watcher``. This package sits beside
``app.scanning``: it may use ``app.connect`` (the login secret), ``app.jobqueue`` (enqueueing a scan)
and ``app.models``, never ``app.services``, ``app.tasks`` or a blueprint.
"""
