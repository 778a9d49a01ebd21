"""How a scan ends other than "done": refused before it starts, stopped, or failed.

``ScanError`` and ``ScanAlreadyRunning`` reach the caller of ``run_scan``. ``RunStopped`` and
``RunFailed`` travel from deep inside a run up to ``run_scan``, which records them on the run.
"""

from __future__ import annotations

# Failures worth retrying a little later (the server or the network), as opposed to a wrong password.
RETRYABLE_KINDS = frozenset({"dns", "refused", "timeout", "protocol"})


class ScanError(Exception):
    """A scan cannot be started or changed as asked; ``str()`` is for people."""


class ScanAlreadyRunning(ScanError):
    """Another run holds the mailbox; nothing was changed."""

    def __init__(self, account_id: int, run_id: int | None) -> None:
        super().__init__(f"A scan of this mailbox is already running (run {run_id}); "
                         "wait for it to end or stop it from the download history.")
        self.account_id = account_id
        self.run_id = run_id


class RunStopped(Exception):
    """Ends the run early: ``status`` "stopped" (a person asked) or "closed" (someone else closed
    the run as dead, and may be scanning the mailbox now)."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class RunFailed(Exception):
    """Ends the run as failed with a readable ``message``; ``kind`` is a ``MailConnectError`` kind
    (or None), so the job can retry connection problems (``RETRYABLE_KINDS``)."""

    def __init__(self, message: str, kind: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind


def closed_as_dead() -> RunStopped:
    """The run was closed by another process while this one was still working."""
    return RunStopped("closed", "The run was closed while it was still working (it was taken for dead).")
