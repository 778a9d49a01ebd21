"""Parse speed on ~3 KB messages: the stdlib parsers alone vs ``parse_message``.

Run: ``.venv/bin/python -m tests.unit.scanner.parse_speed [N]``. Prints messages per second
(CPU time of this process, best of 3, so other load on the machine distorts it less). A third of
the messages are multipart with a text part, an HTML alternative and a small attachment, like the
benchmark mailbox (bench/corpus.py). Not a test: speed lives in benchmarks, not in assertions.
"""

from __future__ import annotations

import base64
import sys
import time
from email.parser import BytesParser
from email.policy import compat32, default

from app.scanner.parse import parse_message
from app.scanner.types import RawMessage

LINE = "Hello, this is line {i} of a customer message about order {i}, with a question.\r\n"


def make(i: int) -> bytes:
    """One synthetic message of about 3 KB."""
    head = (
        f"From: Alice {i} <alice{i}@customer.example>\r\nTo: Support <support@corp.test>\r\n"
        f"Cc: bob@customer.example\r\nSubject: =?utf-8?q?Bestellung_{i}_=E2=80=93_Frage?=\r\n"
        f"Date: Tue, 01 Jul 2025 10:15:00 +0200\r\nMessage-ID: <m{i}@customer.example>\r\n"
        f"Received: from mx.customer.example by mx.corp.test; Tue, 01 Jul 2025 10:15:01 +0200\r\n"
        "MIME-Version: 1.0\r\n"
    )
    if i % 3 == 0:
        text = LINE.format(i=i) * 12
        html = "<p>" + LINE.format(i=i).strip() + "</p>\r\n"
        attachment = base64.encodebytes(bytes(range(256)) * 3).decode().replace("\n", "\r\n")
        body = (
            'Content-Type: multipart/mixed; boundary="m"\r\n\r\n--m\r\n'
            'Content-Type: multipart/alternative; boundary="a"\r\n\r\n--a\r\n'
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n--a\r\n"
            f"Content-Type: text/html; charset=utf-8\r\n\r\n{html * 6}\r\n--a--\r\n--m\r\n"
            'Content-Type: application/pdf; name="order.pdf"\r\n'
            'Content-Disposition: attachment; filename="order.pdf"\r\n'
            f"Content-Transfer-Encoding: base64\r\n\r\n{attachment}\r\n--m--\r\n"
        )
    else:
        body = "Content-Type: text/plain; charset=utf-8\r\n\r\n" + LINE.format(i=i) * 32
    return (head + body).encode()


def rate(messages: list[bytes], fn) -> float:
    """Best-of-3 messages per CPU second of ``fn`` over ``messages``."""
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        for m in messages:
            fn(m)
        best = min(best, time.process_time() - start)
    return len(messages) / best


def main(n: int = 3000) -> None:
    """Print the figures."""
    messages = [make(i) for i in range(n)]
    print(f"{n} messages, average {sum(map(len, messages)) // n} bytes")
    compat = BytesParser(policy=compat32)
    modern = BytesParser(policy=default)

    def stdlib_compat32(m):
        msg = compat.parsebytes(m)
        for part in msg.walk():
            if not part.is_multipart():
                part.get_payload(decode=True)

    def stdlib_default(m):
        msg = modern.parsebytes(m)
        for part in msg.walk():
            if not part.is_multipart():
                part.get_content()
        str(msg["subject"]), msg["from"].addresses, msg["date"].datetime

    figures = [
        ("stdlib compat32: parse + decode every part", stdlib_compat32),
        ("stdlib policy.default: parse + get_content + headers", stdlib_default),
        ("parse_message (compat32 + our decoding, full result)",
         lambda m: parse_message(RawMessage("INBOX", 1, 1, m, len(m)))),
    ]
    for label, fn in figures:
        print(f"{label:56s} {rate(messages, fn):8.0f} msg/s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3000)
