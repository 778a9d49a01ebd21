"""Profile the store step alone: parse a benchmark corpus once, then store it batch by batch.

    .venv/bin/python -m bench.store_profile [--messages 5000] [--contacts 100000] [--db URL] [--profile FILE]

No IMAP and no read-ahead thread: the CPU of ``store_batch`` and the batch commit,
per message, on its own (the part of a scan that runs on the main thread).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import time
from pathlib import Path

STATE = Path(__file__).resolve().parents[1] / ".state" / "bench"


def main(argv=None) -> None:
    """Seed, parse, then time and optionally profile storing the corpus."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--db", default=f"sqlite:///{STATE / 'store-profile.db'}")
    parser.add_argument("--profile", help="print cProfile's top entries (and dump to this file)")
    args = parser.parse_args(argv)

    from app.extensions import db
    from app.models import MailAccount, MailSettings
    from app.scanner.parse import parse_message
    from app.scanner.types import BatchItem, RawMessage, RunCounters
    from app.scanning.store.batch import load_context, store_batch
    from bench.corpus import build_message
    from bench.measure import _app, _seed

    args.host, args.port, args.login, args.password, args.max_messages = "127.0.0.1", 1, "x@y.test", "pw", 0
    rng = random.Random(7)
    raws = [RawMessage(folder="INBOX", uidvalidity=1, uid=i + 1, data=m, size=len(m))
            for i, m in enumerate(build_message(i, rng, matching_contacts=args.contacts)
                                  for i in range(args.messages))]
    started = time.process_time()
    parsed = [parse_message(r) for r in raws]
    parse_cpu = time.process_time() - started
    app = _app(args.db)
    with app.app_context():
        account_id = _seed(args)[0]
        ctx = load_context(db.session.get(MailAccount, account_id), MailSettings.get())

        def store_all():
            for start in range(0, len(parsed), args.batch):
                items = [BatchItem(p, "incoming") for p in parsed[start:start + args.batch]]
                store_batch(ctx, items, RunCounters())
                db.session.commit()

        prof = cProfile.Profile() if args.profile else None
        started = time.process_time()
        if prof:
            prof.runcall(store_all)
        else:
            store_all()
        store_cpu = time.process_time() - started
    n = len(raws)
    print(f"parse {1e6 * parse_cpu / n:.0f} us/msg CPU, store {1e6 * store_cpu / n:.0f} us/msg CPU "
          f"({n} messages, batch {args.batch})")
    if prof:
        prof.dump_stats(args.profile)
        pstats.Stats(prof).sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    main()
