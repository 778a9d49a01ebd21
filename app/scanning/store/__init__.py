"""Storing a batch of parsed messages: ``batch.store_batch`` reads top to bottom.

- ``batch``: the context of a run and ``store_batch`` (dedupe → lookups → decisions → rows → writes);
- ``keys``: the key each message is stored under, and which messages are new;
- ``lookups``: the batch's queries, one each for the whole batch;
- ``rows``: the rows written, and the text hygiene they go through;
- ``postgres`` / ``sqlite``: the bulk writes of each database; ``dialect``: which one, and the
  one-parameter ``IN`` the lookups use;
- ``activity``: the scanner's e-mails of the hour, counted for the start page's board.

The decisions themselves are pure and live in ``app.scanner.decide``.
"""
