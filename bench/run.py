"""The scanner benchmark: limit, naive baseline and ours, measured in the same run.

    .venv/bin/python -m bench.run [--messages 10000] [--contacts 100000] [--db sqlite|postgresql|both]

Starts (or reuses) the private Dovecot, fills benchmark mailboxes by writing
their Maildir directly, runs each measurement in its own process, prints
figures and ratios and writes them to bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import create_engine, text

from bench.corpus import fill_maildir
from tests.services import ensure_dovecot

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PG_ADMIN_URL = os.environ.get("PG_TEST_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def measure(mode: str, dovecot, login: str, password: str, db: str, contacts: int, batch: int) -> dict:
    """Run one measurement in a fresh interpreter and return its JSON."""
    cmd = [sys.executable, "-m", "bench.measure", mode, "--host", dovecot.host, "--port", str(dovecot.port),
           "--login", login, "--password", password, "--db", db, "--contacts", str(contacts),
           "--batch", str(batch)]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def sqlite_url(tag: str) -> str:
    path = ROOT / ".state" / "bench" / f"{tag}-{uuid.uuid4().hex[:6]}.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def postgres_url() -> str | None:
    """A throwaway PostgreSQL database, or None when no server answers."""
    name = f"cm_bench_{uuid.uuid4().hex[:8]}"
    try:
        engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
    except Exception as exc:  # no server: say so, measure SQLite only
        print(f"PostgreSQL not reachable ({str(exc).splitlines()[0]}): measuring SQLite only")
        return None
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def prepare_mailbox(dovecot, login: str, password: str, messages: int, contacts: int) -> None:
    dovecot.add_user(login, password)
    maildir = Path(dovecot.maildir(login))
    started = time.perf_counter()
    size = fill_maildir(maildir, messages, matching_contacts=contacts, owner=(65534, 65534))
    print(f"filled {login}: {messages} messages, {size / 1e6:.1f} MB in {time.perf_counter() - started:.1f} s")


def run_backend(label: str, make_db, dovecot, args) -> dict:
    login, password = "bench@corp.test", "benchpw"
    figures: dict = {}
    limit = measure("limit", dovecot, login, password, "sqlite://", 0, args.batch)
    naive = measure("naive", dovecot, login, password, make_db("naive"), args.contacts, args.batch)
    ours = measure("ours", dovecot, login, password, make_db("ours"), args.contacts, args.batch)
    ours_small = measure("ours", dovecot, login, password, make_db("ours1k"), 1000, args.batch)
    rescan = measure("rescan", dovecot, login, password, make_db("rescan"), 1000, args.batch)
    # Two workers on two mailboxes at once, against one worker on one.
    with ThreadPoolExecutor(2) as pool:
        started = time.perf_counter()
        pair = list(pool.map(lambda lp: measure("ours", dovecot, lp[0], lp[1], make_db("pair"), 1000, args.batch),
                             [(login, password), ("bench2@corp.test", "benchpw")]))
        wall = time.perf_counter() - started
    two_workers = sum(p["messages"] for p in pair) / max(p["seconds"] for p in pair)
    figures.update({
        "backend": label,
        "limit_msgs_per_s": limit["msgs_per_s"],
        "naive_msgs_per_s": naive["msgs_per_s"],
        "ours_msgs_per_s": ours["msgs_per_s"],
        "ours_1k_contacts_msgs_per_s": ours_small["msgs_per_s"],
        "ours_over_limit": round(ours["msgs_per_s"] / limit["msgs_per_s"], 3),
        "ours_over_naive": round(ours["msgs_per_s"] / naive["msgs_per_s"], 2),
        "binding_100k_over_1k_time": round(ours_small["msgs_per_s"] / ours["msgs_per_s"], 3),
        "rescan_unchanged_ms": round(rescan["rescan_ms"], 1),
        "two_workers_msgs_per_s": round(two_workers, 1),
        "two_workers_over_one": round(two_workers / ours_small["msgs_per_s"], 2),
        "two_workers_wall_s": round(wall, 2),
        "peak_rss_mb": ours["peak_rss_mb"],
    })
    return figures


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args(argv)

    dovecot = ensure_dovecot()
    prepare_mailbox(dovecot, "bench@corp.test", "benchpw", args.messages, args.contacts)
    prepare_mailbox(dovecot, "bench2@corp.test", "benchpw", args.messages, args.contacts)

    results = {"messages": args.messages, "contacts": args.contacts, "batch": args.batch,
               "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "backends": []}
    if args.db in ("sqlite", "both"):
        results["backends"].append(run_backend("sqlite", sqlite_url, dovecot, args))
    if args.db in ("postgresql", "both") and postgres_url() is not None:
        results["backends"].append(run_backend("postgresql", lambda tag: postgres_url(), dovecot, args))
    # The headline keys are SQLite's, the embedded default.
    results.update({k: v for k, v in results["backends"][0].items() if k != "backend"})
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2))
    for b in results["backends"]:
        print(f"\n== {b['backend']} ({args.messages} messages, {args.contacts} contacts) ==")
        for key, value in b.items():
            if key != "backend":
                print(f"  {key:32} {value}")
    print(f"\nwritten to {RESULTS / 'latest.json'}")


if __name__ == "__main__":
    main()
