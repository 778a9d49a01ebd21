"""One measurement, run in its own process so that its peak memory is its own.

    python -m bench.measure limit|naive|ours|rescan|workers --host H --port P --login L --password PW
        [--db URL] [--contacts N] [--org-domains 0|1] [--batch N] [--max-messages N] [--workers N --logins L1,L2]
        [--profile FILE]

Prints one JSON object (last line of stdout): the mode, messages handled,
seconds, messages per second, peak RSS in MB, and mode-specific figures.
Only the measured step is timed: database creation and contact seeding happen
before the clock starts.
"""

from __future__ import annotations

import argparse
import cProfile
import email
import imaplib
import json
import multiprocessing
import os
import resource
import sys
import time


def peak_rss_mb() -> float:
    """Peak resident memory of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    """User + system CPU time of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class CommandLog:
    """Counts the IMAP commands (= round trips: imaplib waits for each tagged answer) this process sends.

    Wraps ``imaplib.IMAP4._command``, which every command (LOGIN, STATUS, UID
    FETCH, LOGOUT, ...) goes through, so nothing the scanner does is missed.
    """

    def __init__(self) -> None:
        self.names: list[str] = []
        original = imaplib.IMAP4._command
        log = self

        def _command(conn, name, *args):
            log.names.append(name)
            return original(conn, name, *args)

        imaplib.IMAP4._command = _command


def measure_limit(args) -> tuple[int, float]:
    """Plain imaplib UID FETCH BODY.PEEK[] in chunks of ``--batch`` plus the stdlib parser, and nothing else."""
    started = time.perf_counter()
    conn = imaplib.IMAP4(args.host, args.port)
    conn.login(args.login, args.password)
    conn.select("INBOX", readonly=True)
    _, data = conn.uid("SEARCH", None, "ALL")
    uids = data[0].split()[:args.max_messages or None]
    done = 0
    for start in range(0, len(uids), args.batch):
        chunk = b",".join(uids[start:start + args.batch])
        _, parts = conn.uid("FETCH", chunk, "(UID BODY.PEEK[])")
        for part in parts:
            if isinstance(part, tuple):
                email.message_from_bytes(part[1])
                done += 1
    conn.logout()
    return done, time.perf_counter() - started


def _app(url: str, *, fresh: bool = True):
    from app import create_app
    from app.extensions import db

    app = create_app("testing", SQLALCHEMY_DATABASE_URI=url, QUEUE_MODE="inline")
    if fresh:
        with app.app_context():
            db.drop_all()
            db.create_all()
    return app


def _seed(args, logins: list[str] | None = None) -> list[int]:
    """A server, one mailbox account per login reading INBOX, ``--contacts`` contacts and (unless
    ``--org-domains 0``) organizations owning mail domains."""
    from flask import current_app
    from sqlalchemy import insert

    from app.crypto import encrypt_secret
    from app.extensions import db
    from app.models import Contact, MailAccount, MailServer, MailSettings, ScanFolder, User
    from bench.corpus import contact_address

    server = MailServer(name="bench", imap_host=args.host, imap_port=args.port, imap_security="none",
                        smtp_host=args.host, smtp_port=25, smtp_security="none")
    owner = User(username="bench", password_hash="x")
    db.session.add_all([server, owner])
    db.session.flush()
    ids = []
    for n, login in enumerate(logins or [args.login]):
        account = MailAccount(name=f"Bench {n}", server_id=server.id, login=login, assignee_id=owner.id,
                              password_enc=encrypt_secret(current_app.config["MAIL_ENCRYPTION_KEY"], args.password),
                              actions="create_email,bind_email,open_ticket,create_ticket",
                              search_fields="contacts,organizations,leads,users")
        db.session.add(account)
        db.session.flush()
        db.session.add(ScanFolder(account_id=account.id, name="INBOX", direction="incoming"))
        ids.append(account.id)
    settings = MailSettings.get()
    # The budget is the benchmark's message count; the batch is the same one the limit uses.
    settings.max_per_run = args.max_messages or 10_000_000
    settings.batch_size = args.batch
    settings.loop_max_messages = 1_000_000
    rows = [{"first_name": "C", "last_name": str(i), "email": contact_address(i)} for i in range(args.contacts)]
    for start in range(0, len(rows), 5000):
        db.session.execute(insert(Contact), rows[start:start + 5000])
    if args.org_domains:
        _seed_organization_domains(args.contacts)
    db.session.commit()
    return ids


def _seed_organization_domains(contacts: int) -> None:
    """Organizations owning mail domains: every domain the corpus writes from (so that most messages
    bind to an organization by domain, at any contact count), plus one more per 10 contacts, so
    that the table grows with the contacts while the binding work stays the same."""
    from sqlalchemy import insert, select

    from app.extensions import db
    from app.models import Organization, OrganizationDomain
    from bench.corpus import corpus_domains

    domains = [*corpus_domains(), *(f"org{j}.test" for j in range(contacts // 10))]
    for start in range(0, len(domains), 5000):
        part = domains[start:start + 5000]
        db.session.execute(insert(Organization), [{"name": f"Org {d}"} for d in part])
    ids = dict(db.session.execute(select(Organization.name, Organization.id)).all())
    rows = [{"organization_id": ids[f"Org {d}"], "domain": d} for d in domains]
    for start in range(0, len(rows), 5000):
        db.session.execute(insert(OrganizationDomain), rows[start:start + 5000])


def measure_naive(args) -> tuple[int, float]:
    """The obvious implementation: one message at a time, a query per address, a commit per message."""
    from imap_tools import MailBoxUnencrypted

    from app.extensions import db
    from app.models import Contact, Email, EmailLink

    app = _app(args.db)
    with app.app_context():
        account_id = _seed(args)[0]
        started = time.perf_counter()
        done = 0
        with MailBoxUnencrypted(args.host, args.port).login(args.login, args.password, "INBOX") as box:
            for msg in box.fetch(mark_seen=False, bulk=False, limit=args.max_messages or None):
                row = Email(account_id=account_id, folder="INBOX", uidvalidity=1, uid=int(msg.uid),
                            message_key=(msg.headers.get("message-id") or (msg.uid,))[0],
                            subject=msg.subject, from_addr=msg.from_.lower(), to_addrs=",".join(msg.to),
                            body_text=msg.text, body_html=msg.html, raw=msg.obj.as_bytes())
                db.session.add(row)
                db.session.flush()
                for address in {msg.from_, *msg.to, *msg.cc}:
                    contact = Contact.query.filter_by(email=address.lower()).first()
                    if contact is not None:
                        db.session.add(EmailLink(email_id=row.id, record_type="contact", record_id=contact.id))
                db.session.commit()
                done += 1
    return done, time.perf_counter() - started


def _scan(account_id: int):
    """``run_scan`` as the worker runs it: under the scan's runtime settings (``app.scanning.runtime``)."""
    from app.scanning.run import run_scan
    from app.scanning.runtime import scan_runtime

    with scan_runtime():
        return run_scan(account_id, trigger="bench")


def _profiled(args, fn):
    """Run ``fn()`` under cProfile when ``--profile`` names a file (the stats are dumped there)."""
    if not args.profile:
        return fn()
    prof = cProfile.Profile()
    try:
        return prof.runcall(fn)
    finally:
        prof.dump_stats(args.profile)


def measure_ours(args) -> tuple[int, float]:
    """The product's scan, end to end, as a worker runs it: only ``run_scan`` is timed."""
    app = _app(args.db)
    with app.app_context():
        account_id = _seed(args)[0]
        started = time.perf_counter()
        run = _profiled(args, lambda: _scan(account_id))
        seconds = time.perf_counter() - started
        if run.status not in ("done", "partial"):
            raise SystemExit(f"scan failed: {run.status} {run.message}")
        args.bound = _bound_figures(run)
        return run.downloaded, seconds


def _bound_figures(run) -> dict:
    """How many messages the run bound, and to how many organizations (read after the clock stopped)."""
    from sqlalchemy import distinct, func, select

    from app.extensions import db
    from app.models import EmailLink

    orgs = db.session.scalar(select(func.count(distinct(EmailLink.email_id)))
                             .where(EmailLink.record_type == "organization"))
    return {"bound": run.bound, "bound_to_organizations": orgs}


def measure_rescan(args) -> dict:
    """Scan, then time exactly one more ``run_scan`` of the unchanged mailbox, counting its IMAP commands.

    The login's share is timed separately (``open_imap`` wrapped), and the
    commands are split at the LOGIN: "one round trip" is the STATUS per folder
    sent after it (plus the LOGOUT, which the scanner does not wait on for data).
    """
    from app.connect import imap
    app = _app(args.db)
    with app.app_context():
        account_id = _seed(args)[0]
        _scan(account_id)
        log = CommandLog()
        login_time = [0.0]
        original = imap.open_imap

        def timed_open(*a, **kw):
            t0 = time.perf_counter()
            try:
                return original(*a, **kw)
            finally:
                login_time[0] += time.perf_counter() - t0

        imap.open_imap = timed_open
        samples = []
        for _ in range(max(1, args.repeat)):
            log.names.clear()
            login_time[0] = 0.0
            started = time.perf_counter()
            run = _profiled(args, lambda: _scan(account_id))
            samples.append(((time.perf_counter() - started) * 1000, login_time[0] * 1000, list(log.names),
                            run.downloaded))
        samples.sort(key=lambda s: s[0])
        ms, login_ms, names, downloaded = samples[len(samples) // 2]  # the median run
        after = names[names.index("LOGIN") + 1:] if "LOGIN" in names else names
        return {"rescan_ms": round(ms, 1), "rescan_login_ms": round(login_ms, 1),
                "rescan_without_login_ms": round(ms - login_ms, 1),
                "rescan_min_ms": round(samples[0][0], 1),
                "rescan_imap_commands": names, "rescan_commands_after_login": after,
                "rescan_round_trips_after_login": len([c for c in after if c != "LOGOUT"]),
                "rescan_downloaded": downloaded}


def _worker(url: str, account_id: int, barrier, out) -> None:
    """One scan worker (a separate process, like an RQ worker): wait for the others, then scan."""
    app = _app(url, fresh=False)
    with app.app_context():
        barrier.wait()
        cpu0, started = cpu_seconds(), time.perf_counter()
        run = _scan(account_id)
        out.put({"account": account_id, "start": time.time() - (time.perf_counter() - started),
                 "end": time.time(), "messages": run.downloaded, "status": run.status,
                 "cpu_s": cpu_seconds() - cpu0, "peak_rss_mb": peak_rss_mb()})


def measure_workers(args) -> dict:
    """``--workers`` scan workers on as many mailboxes (``--logins``), one shared database.

    Every worker has the same workload (same mailbox size, same contacts), the
    database is seeded before any clock starts, and the workers start together
    behind a barrier; throughput is all messages over the span from the first
    start to the last end.
    """
    logins = args.logins.split(",")[:args.workers]
    app = _app(args.db)
    with app.app_context():
        from app.extensions import db

        ids = _seed(args, logins)
        db.engine.dispose()
    ctx = multiprocessing.get_context("spawn")  # fresh interpreters, like separate worker processes
    barrier, out = ctx.Barrier(len(ids)), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(args.db, i, barrier, out)) for i in ids]
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    bad = [r for r in results if r["status"] not in ("done", "partial")]
    if bad:
        raise SystemExit(f"worker scan failed: {bad}")
    span = max(r["end"] for r in results) - min(r["start"] for r in results)
    messages = sum(r["messages"] for r in results)
    return {"workers": len(ids), "messages": messages, "seconds": round(span, 3),
            "msgs_per_s": round(messages / span, 1),
            "cpu_s_per_worker": [round(r["cpu_s"], 2) for r in results],
            "worker_peak_rss_mb": max(r["peak_rss_mb"] for r in results)}


MODES = {"limit": measure_limit, "naive": measure_naive, "ours": measure_ours}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=[*MODES, "rescan", "workers"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=10143)
    parser.add_argument("--login", default="bench@corp.test")
    parser.add_argument("--logins", default="bench@corp.test,bench2@corp.test")
    parser.add_argument("--password", required=True)
    parser.add_argument("--db", default="sqlite://")
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--org-domains", type=int, choices=[0, 1], default=1,
                        help="1: seed organizations owning mail domains (see _seed_organization_domains)")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--max-messages", type=int, default=0, help="handle at most this many (0: all)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5, help="rescan: runs measured (the median is reported)")
    parser.add_argument("--profile", help="write cProfile stats of the timed step to this file")
    args = parser.parse_args(argv)
    extra: dict = {}
    if args.mode == "rescan":
        extra = measure_rescan(args)
    elif args.mode == "workers":
        extra = measure_workers(args)
    else:
        count, seconds = MODES[args.mode](args)
        extra = {"messages": count, "seconds": round(seconds, 3),
                 "msgs_per_s": round(count / seconds, 1) if seconds else None, **getattr(args, "bound", {})}
    print(json.dumps({"mode": args.mode, **extra, "peak_rss_mb": round(peak_rss_mb(), 1),
                      "load_avg": [round(x, 2) for x in os.getloadavg()]}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
