"""One scan from start to end: a mailbox read over IMAP into e-mails, links and tickets.

Read it in this order; each module's docstring says what it owns.

1. ``run.run_scan(account_id, ...)`` is the entry of one scan. It closes runs that died
   (``liveness``), takes the mailbox with a compare-and-set on ``mail_accounts.running_run_id``,
   reads the run's setup once (``setup.RunSetup``), logs in (``login``), runs the folder loop,
   and records how the run ended (done / partial / stopped / failed) and frees the mailbox.
2. ``folders.scan_folders``: one STATUS per folder plans the run (``app.scanner.plan``); then
   each folder with new mail is listed with sizes and cut into chunks by count and bytes
   (``imap_reads``), within the run's budget, checking between chunks whether to stop.
3. ``chunks``: a chunk is read (fetch with ``BODY.PEEK``, parse, filter: no database), the next
   one ahead in a helper thread (``ReadAhead``), then stored in one transaction with the folder's
   new last UID and the run's counters (``store_chunk``); a batch that fails is stored again
   one message at a time, so only the culprit is reported.
4. ``store.batch.store_batch``: dedupe, and links to what another mailbox stored already
   (``store.keys``) → one query per lookup for the whole
   batch (``store.lookups``) → the per-message decisions, pure (``app.scanner.decide``) → rows
   (``store.rows``) → bulk writes in the dialect's fastest form (``store.postgres``,
   ``store.sqlite``).
5. ``housekeeping``: what a scanner does on the server with a stored message (mark it read, move
   it, delete it). The action is recorded in the chunk's transaction and done after the folder
   loop; a run first does what a killed run still owed.
6. ``progress`` reports where the scan is (to the RQ job's meta and to this process) and saves
   the counters and heartbeat; ``runtime`` holds the interpreter tuning a worker applies around
   a scan and the SQLite writer's turn every batch takes.

What this package may use: ``app.scanner`` (the pure steps), ``app.models``, ``app.extensions``,
``app.connect`` (``credentials.login_secret``, ``imap.open_imap``) and ``app.jobqueue``
(``jobs.job_running`` for dead runs). It never imports ``app.services``, ``app.tasks`` or a
blueprint: the use cases (queue a scan, its progress, stop it, with the audit record of a stop)
are ``app.services.scans``, and the RQ job is ``app.tasks.scan_job``.

Where this layout differs from the first proposal, and why:

- ``folders`` holds only the loop over folders; one chunk (read, read-ahead, store, the
  one-by-one fallback) is ``chunks``, and the dataclasses both use (``RunSetup``,
  ``FolderScan``) are ``setup``, so neither imports the other and the reader thread is handed
  plain data that never touches the database or the Flask app. The read-ahead is a small class
  in ``chunks`` rather than a module: it only ever reads chunks.
- ``login`` is its own module: logging in keeps the scanner's health (failed logins counted,
  blocked at the limit, unblocked on success, a refused OAuth token dropped).
- ``errors`` names the ways a run ends early (``RunStopped``, ``RunFailed``), which travel from
  the folder loop, the progress saves and the login up to ``run_scan``, and the errors a caller
  sees (``ScanError``, ``ScanAlreadyRunning``, ``RETRYABLE_KINDS``).
- ``store`` also has ``keys`` (dedupe is neither a lookup nor a write) and ``dialect`` (which
  database, and the one-parameter ``IN`` that both the lookups and SQLite's id read-back use).
  ``store_batch`` picks the dialect's writes once per batch through a small protocol, so the
  two write modules have the same four functions.
- A message cut to its header by the size limit is recognised by the value
  ``app.scanner.types.TRUNCATED_DEFECT`` (which the parse step adds) and a reused Message-ID by
  the flag ``NewMessage.reused_message_id``; no defect text is searched.
- ``app.scanner.decide.decide_batch`` works on copies of the lookups and changes none of its
  arguments; the loop protection's sliding window over the messages' dates, which used to be
  split between the store and the throttle, is one class (``app.scanner.throttle.SenderWindow``).
- The runtime tuning is applied by whatever runs scans as its main work: the RQ job, the CLI's
  ``scanners run`` and the benchmark. With ``QUEUE_MODE=inline`` the scan runs inside the web
  process and is not tuned: freezing the collector and the 1 ms switch interval are
  process-wide, so they would also apply to every request the web server's other threads serve
  meanwhile, and inline mode is the single-process mode (development, the demo's first scan)
  where a scan's last 8 % of speed does not matter.
"""
