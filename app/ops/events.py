"""Log lines for hand-offs and scan-run starts, taken from the rows their services write.

The autologin and scan services record these events in the database; a
mapper listener turns each new row into one log line (with the request or
job id of the context), so every hand-off and run is in the logs without
those services knowing about logging formats.
"""

from __future__ import annotations

import logging

from sqlalchemy import event

from app.models import AutologinEvent, ScanRun

handoff_log = logging.getLogger("app.handoff")
run_log = logging.getLogger("app.scan_run")


def _handoff_inserted(mapper, connection, target: AutologinEvent) -> None:
    handoff_log.info("hand-off %s: user %s, mailbox %s", target.outcome, target.user_id, target.account_id,
                     extra={"handoff_outcome": target.outcome, "user_id": target.user_id,
                            "account_id": target.account_id, "client_address": target.address})


def _run_inserted(mapper, connection, target: ScanRun) -> None:
    run_log.info("scan run %s of scanner %s started (%s)", target.id, target.account_id, target.trigger,
                 extra={"run_id": target.id, "account_id": target.account_id, "trigger": target.trigger})


def install() -> None:
    """Attach the listeners once per process."""
    for model, listener in ((AutologinEvent, _handoff_inserted), (ScanRun, _run_inserted)):
        if not event.contains(model, "after_insert", listener):
            event.listen(model, "after_insert", listener)
