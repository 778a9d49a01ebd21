"""parse_message and its helpers: decoding, filenames, identifiers, and "never raises"."""

import random
from pathlib import Path

import pytest

from app.scanner.bodies import html_to_text, safe_filename
from app.scanner.headers import decode_header_value, normalize_message_id
from tests.unit.scanner.helpers import parse

CORPUS = Path(__file__).resolve().parents[2] / "corpus"


@pytest.mark.parametrize("raw,expected", [
    ("plain text", "plain text"),
    ("=?utf-8?q?caf=C3=A9?= =?utf-8?q?_bar?=", "café bar"),
    ("=?ISO-8859-1?B?Y2Fm6Q==?= au lait", "café au lait"),
    ("=?utf-8?q?=E2=82?=\r\n =?utf-8?q?=AC?=", "€"),  # a character split between two words
    ("a =?utf-8?q?x?=  =?iso-8859-1?q?=E9?= b", "a xé b"),
    ("=?utf-8*en?q?lang?=", "lang"),
    ("=?utf-8?b?w7Y?=", "ö"),  # missing base64 padding
    ("=?utf-8?b?!!!?=", "=?utf-8?b?!!!?="),
    ("folded\r\n line", "folded line"),
])
def test_decode_header_value(raw, expected):
    assert decode_header_value(raw) == expected


def test_decode_header_value_reports_problems():
    defects = []
    assert decode_header_value("=?no-such-cs?q?abc?=", defects, "Subject") == "abc"
    assert defects == ["unknown charset 'no-such-cs' in the Subject header"]


@pytest.mark.parametrize("name,ctype,expected", [
    ("report.pdf", "application/pdf", "report.pdf"),
    ("../../etc/passwd", "text/plain", "passwd"),
    ("C:\\Users\\x\\evil.exe", "application/octet-stream", "evil.exe"),
    ("..", "application/octet-stream", "attachment-3.bin"),
    ("  .hidden  ", "text/plain", "hidden"),
    ("a\x00b\r\nc\x1b.txt", "text/plain", "abc.txt"),
    ("invoice\u202efdp.exe", "application/octet-stream", "invoicefdp.exe"),
    ('what?<is>"this".txt', "text/plain", "what__is__this_.txt"),
    (None, "text/calendar", "attachment-3.ics"),
    ("", "image/jpeg", "attachment-3.jpg"),
    ("", "application/x-nothing-known", "attachment-3.bin"),
])
def test_safe_filename(name, ctype, expected):
    assert safe_filename(name, ctype, 3) == expected


def test_safe_filename_long_keeps_extension():
    assert safe_filename("x" * 500 + ".docx", "application/octet-stream", 1) == "x" * 145 + ".docx"
    assert len(safe_filename("y" * 500, "application/octet-stream", 1)) == 150


def test_message_ids():
    assert normalize_message_id("  <a@b>  (comment)") == "a@b"
    assert normalize_message_id("<>") is None
    long_id = "<" + "x" * 400 + "@b>"
    hashed = normalize_message_id(long_id)
    assert hashed.startswith("sha256:") and hashed == normalize_message_id(long_id)  # stable
    p = parse(f"From: a@b.example\nMessage-ID: {long_id}\nIn-Reply-To: {long_id}\n\nx\n")
    assert p.message_id == p.message_key == p.in_reply_to == hashed


def test_date_is_naive_utc_and_zone_less_dates_are_utc():
    p = parse("From: a@b.example\nDate: Mon, 31 Dec 2029 23:30:00 -0130\n\nx\n")
    assert p.date.isoformat() == "2030-01-01T01:00:00"
    p = parse("From: a@b.example\nDate: 1 Jan 2025 10:00:00\n\nx\n")
    assert p.date.isoformat() == "2025-01-01T10:00:00"


def test_header_items_and_headers_text():
    p = parse("From: a@b.example\nX-Custom: =?utf-8?q?d=C3=A9j=C3=A0?=\nSubject: s\n\nbody\n")
    assert ("x-custom", "déjà") in p.header_items
    assert "X-Custom: déjà" in p.headers_text.splitlines()


def test_automatic_reason_is_set_by_parse():
    p = parse("From: a@b.example\nPrecedence: bulk\nSubject: news\n\nx\n")
    assert p.automatic_reason == "bulk mail (Precedence: bulk)"


def test_html_to_text():
    assert html_to_text("<p>a&amp;b</p><script>x()</script><div>c  d</div>") == "a&b\n\nc d"


def test_truncated_message_keeps_header_and_says_why():
    p = parse("From: a@b.example\nSubject: big\nContent-Type: multipart/mixed; boundary=x\n\n", truncated=True)
    assert p.subject == "big" and p.body_text == "" and p.attachments == []
    assert p.defects[0] == "message over the size limit: only its header was stored"
    assert not any("MIME" in d for d in p.defects)  # the missing body is not reported as broken MIME


def test_never_raises_on_mutated_corpus():
    rnd = random.Random(1234)
    seeds = [p.read_bytes() for p in sorted(CORPUS.glob("*.eml")) if p.stat().st_size]
    for i in range(300):
        data = bytearray(rnd.choice(seeds))
        for _ in range(rnd.randint(1, 20)):
            op = rnd.random()
            pos = rnd.randrange(len(data) + 1)
            if op < 0.4 and data:
                data[min(pos, len(data) - 1)] = rnd.randrange(256)
            elif op < 0.7:
                data[pos:pos] = rnd.choice([b"\r\n", b"--", b"=?", b"?=", b"\x00", b"<", b";", b"\xff", b"\n\n"])
            else:
                del data[pos:pos + rnd.randint(1, 40)]
        p = parse(bytes(data), uid=i)
        assert p.message_key
        p.body_text.encode("utf-8")
        p.headers_text.encode("utf-8")


def test_unparseable_message_is_still_accounted_for():
    depth = 3000  # deeper than the stdlib parser's recursion allows
    body = "".join(f'--b{i}\nContent-Type: multipart/mixed; boundary="b{i + 1}"\n\n' for i in range(depth))
    p = parse('From: a@b.example\nContent-Type: multipart/mixed; boundary="b0"\n\n' + body + "\x00")
    assert p.message_key.startswith("sha256:")
    assert p.defects[0].startswith("could not be parsed")
    assert "\x00" not in p.body_text
