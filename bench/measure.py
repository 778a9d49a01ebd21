"""One measurement, run in its own process so that its peak memory is its own.

    python -m bench.measure limit|naive|ours --host H --port P --login L --password PW [--db URL]
        [--contacts N] [--batch N]

Prints one JSON object: the mode, messages handled, seconds, messages per second, peak RSS in MB.
"""

from __future__ import annotations

import argparse
import email
import imaplib
import json
import resource
import sys
import time


def peak_rss_mb() -> float:
    """Peak resident memory of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_limit(args) -> tuple[int, float]:
    """Plain imaplib UID FETCH BODY.PEEK[] in chunks plus the stdlib parser, and nothing else."""
    started = time.perf_counter()
    conn = imaplib.IMAP4(args.host, args.port)
    conn.login(args.login, args.password)
    conn.select("INBOX", readonly=True)
    _, data = conn.uid("SEARCH", None, "ALL")
    uids = data[0].split()
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


def _app(args):
    from app import create_app
    from app.extensions import db

    app = create_app("testing", SQLALCHEMY_DATABASE_URI=args.db, QUEUE_MODE="inline")
    with app.app_context():
        db.drop_all()
        db.create_all()
    return app


def _seed(args):
    """A server, a mailbox account reading INBOX, and ``--contacts`` contacts."""
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
    account = MailAccount(name="Bench", server_id=server.id, login=args.login, assignee_id=owner.id,
                          password_enc=encrypt_secret(current_app.config["MAIL_ENCRYPTION_KEY"], args.password),
                          actions="create_email,bind_email,open_ticket,create_ticket",
                          search_fields="contacts,organizations,leads,users")
    db.session.add(account)
    db.session.flush()
    db.session.add(ScanFolder(account_id=account.id, name="INBOX", direction="incoming"))
    settings = MailSettings.get()
    settings.max_per_run = 10_000_000
    settings.batch_size = args.batch
    settings.loop_max_messages = 1_000_000
    rows = [{"first_name": "C", "last_name": str(i), "email": contact_address(i)} for i in range(args.contacts)]
    for start in range(0, len(rows), 5000):
        db.session.execute(insert(Contact), rows[start:start + 5000])
    db.session.commit()
    return account.id


def measure_naive(args) -> tuple[int, float]:
    """The obvious implementation: one message at a time, a query per address, a commit per message."""
    from imap_tools import MailBoxUnencrypted

    from app.extensions import db
    from app.models import Contact, Email, EmailLink

    app = _app(args)
    with app.app_context():
        account_id = _seed(args)
        started = time.perf_counter()
        done = 0
        with MailBoxUnencrypted(args.host, args.port).login(args.login, args.password, "INBOX") as box:
            for msg in box.fetch(mark_seen=False, bulk=False):
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


def measure_ours(args) -> tuple[int, float]:
    """The product's scan, end to end, as a worker runs it."""
    from app.services import scans

    app = _app(args)
    with app.app_context():
        account_id = _seed(args)
        started = time.perf_counter()
        run = scans.run_scan(account_id, trigger="bench")
        seconds = time.perf_counter() - started
        if run.status not in ("done", "partial"):
            raise SystemExit(f"scan failed: {run.status} {run.message}")
        return run.downloaded, seconds


def measure_rescan(args) -> dict:
    """Scan, then time a second scan of the unchanged mailbox."""
    from app.services import scans

    app = _app(args)
    with app.app_context():
        account_id = _seed(args)
        scans.run_scan(account_id, trigger="bench")
        started = time.perf_counter()
        run = scans.run_scan(account_id, trigger="bench")
        return {"rescan_ms": (time.perf_counter() - started) * 1000, "rescan_downloaded": run.downloaded}


MODES = {"limit": measure_limit, "naive": measure_naive, "ours": measure_ours}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=[*MODES, "rescan"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=10143)
    parser.add_argument("--login", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--db", default="sqlite://")
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args(argv)
    if args.mode == "rescan":
        print(json.dumps({"mode": "rescan", **measure_rescan(args), "peak_rss_mb": peak_rss_mb()}))
        return
    count, seconds = MODES[args.mode](args)
    print(json.dumps({"mode": args.mode, "messages": count, "seconds": round(seconds, 3),
                      "msgs_per_s": round(count / seconds, 1) if seconds else None,
                      "peak_rss_mb": round(peak_rss_mb(), 1)}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
