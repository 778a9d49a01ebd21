"""What *After storing* costs a scan: leave (the baseline), mark read, move, delete, in the same run.

    .venv/bin/python -m bench.housekeeping [--messages 2000] [--rounds 3] [--batch 200]

Each round scans a fresh Dovecot mailbox of ``--messages`` small messages once per option, on a
fresh SQLite file, in the order leave, mark read, move, delete, then the next round (interleaved, so
a busy moment of the shared machine hurts every option alike); the best time of each is kept.
``scan`` is the whole ``run_scan``; ``actions`` is the time spent in ``housekeeping.perform`` (the
IMAP commands and the deletes of the rows) and ``record`` the time spent writing the rows in the
chunks' transactions (both are part of ``scan``). Figures are printed and written to
bench/results/housekeeping.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from app import create_app
from app.crypto import encrypt_secret
from app.extensions import db
from app.models import MailAccount, MailServer, MailSettings, ScanFolder
from app.scanning import housekeeping, run
from tests.scan_helpers import order_mail
from tests.services import ensure_dovecot

RESULTS = Path(__file__).resolve().parent / "results"
OPTIONS = (("leave", "keep", None), ("mark read", "mark_read", None), ("move", "move", "Processed"),
           ("delete", "delete", None))


class _Timed:
    """Wraps a function to add up the time spent in it."""

    def __init__(self, inner) -> None:
        self.seconds = 0.0
        self._inner = inner

    def __call__(self, *args, **kwargs):
        started = time.perf_counter()
        try:
            return self._inner(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - started


def _scan_once(dovecot, messages: int, batch: int, action: str, folder: str | None, tmp: Path) -> dict:
    login, password = dovecot.new_user("bench-tidy")
    for start in range(0, messages, 500):
        dovecot.append_many(login, password, "INBOX", [order_mail(i) for i in range(start, min(messages, start + 500))])
    if folder:
        conn = dovecot.connect(login, password)
        conn.create(f'"{folder}"')
        conn.logout()
    app = create_app("testing", SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp / (login + '.db')}", QUEUE_MODE="inline")
    timed, recorded = _Timed(housekeeping.perform), _Timed(housekeeping.record)
    housekeeping.perform, housekeeping.record = timed, recorded
    try:
        with app.app_context():
            db.create_all()
            settings = MailSettings.get()
            settings.batch_size, settings.max_per_run = batch, 10_000_000
            server = MailServer(name="bench", imap_host=dovecot.host, imap_port=dovecot.port, imap_security="none",
                                smtp_host=dovecot.host, smtp_port=25, smtp_security="none")
            account = MailAccount(name="Bench", server=server, login=login, actions="create_email,bind_email",
                                  password_enc=encrypt_secret(app.config["MAIL_ENCRYPTION_KEY"], password),
                                  after_store=action, after_store_folder=folder, folders=[ScanFolder(name="INBOX")])
            db.session.add_all([server, account])
            db.session.commit()
            started = time.perf_counter()
            result = run.run_scan(account.id)
            took = time.perf_counter() - started
            assert result.status == "done" and result.created == messages, result.message
            db.session.remove()
            db.engine.dispose()
    finally:
        housekeeping.perform, housekeeping.record = timed._inner, recorded._inner
        dovecot.reset_mailbox(login)
    return {"scan": took, "actions": timed.seconds, "record": recorded.seconds}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=200)
    args = parser.parse_args(argv)
    dovecot = ensure_dovecot()
    best: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for round_no in range(args.rounds):
            for label, action, folder in OPTIONS:
                figures = _scan_once(dovecot, args.messages, args.batch, action, folder, Path(tmp))
                print(f"round {round_no + 1} {label:9} scan {figures['scan']:.2f} s, actions "
                      f"{figures['actions']:.3f} s, record {figures['record']:.3f} s "
                      f"(load {os.getloadavg()[0]:.2f})", flush=True)
                if label not in best or figures["scan"] < best[label]["scan"]:
                    best[label] = figures
    base = best["leave"]["scan"]
    print(f"\n{args.messages} messages, batches of {args.batch}, best of {args.rounds}:")
    for label, figures in best.items():
        print(f"  {label:9} scan {figures['scan']:.2f} s ({args.messages / figures['scan']:.0f} msg/s, "
              f"{figures['scan'] / base:.2f} x leave), of which actions {figures['actions']:.3f} s, "
              f"record {figures['record']:.3f} s")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "housekeeping.json").write_text(json.dumps(
        {"messages": args.messages, "batch": args.batch, "rounds": args.rounds, "best": best}, indent=2))


if __name__ == "__main__":
    main()
