"""Every message of tests/corpus/ parses without an exception, with the fields it must have.

The corpus holds malformed and exotic mail (see tests/corpus/README.md); the scan-engine's
integration tests append the same files to a real Dovecot mailbox.
"""

from pathlib import Path

import pytest

from app.scanner.bodies import used_boundary
from app.scanner.types import TRUNCATED_DEFECT
from tests.unit.scanner.helpers import parse

CORPUS = Path(__file__).resolve().parents[2] / "corpus"
FILES = sorted(p.name for p in CORPUS.glob("*.eml"))


def load(name: str, **kw):
    return parse((CORPUS / name).read_bytes(), **kw)


def names(parsed):
    return [a.filename for a in parsed.attachments]


def has_defect(parsed, words):
    return any(words in d for d in parsed.defects)


def test_corpus_is_big_enough():
    assert len(FILES) >= 20


@pytest.mark.parametrize("name", FILES)
def test_every_message_parses_into_storable_text(name):
    parsed = load(name, truncated="truncated" in name)
    assert parsed.message_key and len(parsed.message_key) <= 300
    assert parsed.message_id is None or parsed.message_key == parsed.message_id
    texts = [parsed.subject, parsed.from_name, parsed.body_text, parsed.body_html, parsed.headers_text,
             *(v for _, v in parsed.header_items), *names(parsed)]
    for text in texts:
        assert "\x00" not in text
        text.encode("utf-8")  # no lone surrogates: every database driver can store it
    for att in parsed.attachments:
        assert att.filename and "/" not in att.filename and "\\" not in att.filename
        assert not att.filename.startswith(".") and len(att.filename) <= 150
        assert all(ord(c) >= 32 for c in att.filename)
    for addr in parsed.all_addresses:
        assert addr == addr.lower() and "@" in addr
    assert parsed.date is None or parsed.date.tzinfo is None


def test_01_plain():
    p = load("01-plain-utf8.eml")
    assert p.message_id == "plain-0001@customer.example"
    assert p.subject == "Drucker funktioniert nicht – bitte helfen"
    assert (p.from_addr, p.from_name) == ("alice@customer.example", "Alice Example")
    assert p.to == ["support@corp.test"] and p.cc == ["bob@customer.example"]
    assert p.reply_to == ["alice.private@customer.example"]
    assert p.date.isoformat() == "2025-07-01T08:15:00"
    assert "Grüße, Alice" in p.body_text and p.defects == [] and p.automatic_reason is None


def test_02_broken_boundary_keeps_the_text():
    p = load("02-broken-boundary.eml")
    # The parts use a boundary that was never declared: they are read with the one they use.
    assert p.body_text == "The parts use a boundary that was never declared."
    assert [(a.filename, a.data) for a in p.attachments] == [("data.bin", bytes(range(6)))]
    assert has_defect(p, "the parts use the boundary 'other-boundary', not the one declared")


def test_a_multipart_without_any_boundary_stays_one_text():
    p = parse("""
From: a@b.example
Subject: no parts
Content-Type: multipart/mixed; boundary="declared"

Just some text, and no boundary line at all.
--a dash line once
""")
    assert "Just some text" in p.body_text and p.attachments == []


def test_used_boundary():
    assert used_boundary("pre\r\n--b1\r\nx\r\n--b1\r\ny\r\n--b1--\r\n") == "b1"
    assert used_boundary("--only-closed\nx\n--only-closed--\n") == "only-closed"
    assert used_boundary("-- signature\n--once\ntext") is None
    assert used_boundary("no lines at all") is None


def test_03_unknown_charset_falls_back_readably():
    p = load("03-unknown-charset.eml")
    assert p.subject == "Qapla' café"
    assert p.body_text == "Café crème, naïve résumé."
    assert has_defect(p, "unknown charset 'x-klingon'")


def test_04_bad_encoded_words():
    p = load("04-bad-encoded-words.eml")
    # adjacent words joined (even a character split over two words), bad ones kept as written
    assert p.subject.startswith("été split € bad =?utf-8?B?@@@?= and abc")
    assert p.from_addr == "erin@customer.example"
    assert has_defect(p, "badly encoded word") and has_defect(p, "unknown charset 'unknown-cs'")


def test_05_missing_headers():
    p = load("05-missing-headers.eml")
    assert p.message_id is None and p.message_key.startswith("sha256:") and len(p.message_key) == 71
    assert p.from_addr is None and p.date is None
    for words in ("no Message-ID", "no From", "no Date"):
        assert has_defect(p, words)


def test_06_07_duplicate_message_ids_share_the_key():
    a, b = load("06-duplicate-message-id-a.eml"), load("07-duplicate-message-id-b.eml")
    assert a.message_key == b.message_key == "dup-0006@customer.example"
    assert has_defect(b, "more than one Message-ID")


def test_08_nested_multipart():
    p = load("08-nested-multipart.eml")
    assert p.body_text == "Plain version of the nested message."
    assert "Inner forwarded body" not in p.body_text
    assert '<img src="cid:chart@grace">' in p.body_html
    chart, forwarded, csv = p.attachments
    assert (chart.filename, chart.content_id, chart.is_inline) == ("chart.png", "chart@grace", True)
    assert chart.data.startswith(b"\x89PNG")
    assert forwarded.content_type == "message/rfc822" and forwarded.filename.endswith(".eml")
    assert b"Inner forwarded body" in forwarded.data
    assert (csv.filename, csv.data) == ("report.csv", b"a,b\r\n1,2")


def test_09_attachments_without_names():
    p = load("09-attachment-no-name.eml")
    assert names(p) == ["attachment-1.pdf", "attachment-2.png", "attachment-3.bin"]
    assert p.attachments[0].data.startswith(b"%PDF")
    assert p.body_text == "See attached."


def test_10_path_traversal_names():
    p = load("10-path-traversal-names.eml")
    got = names(p)
    assert got[0] == "passwd" and got[1] == "evil.bat"
    assert got[2] == "hiddennamegnp.exe"  # CR/LF and the right-to-left override removed
    assert len(got[3]) == 150 and got[3].endswith(".pdf")
    assert got[4] == "attachment-5.bin"
    assert got[5] == "encöded.txt"


def test_11_8bit_garbage_headers():
    p = load("11-8bit-garbage-headers.eml")
    assert p.subject.startswith("Grüße aus München")
    assert (p.from_addr, p.from_name) == ("juergen@customer.example", "Jürgen Müller")
    assert p.to == ["support@corp.test"]
    assert "名前" in p.headers_text
    assert has_defect(p, "8-bit bytes without a charset")


def test_12_invalid_utf8_body():
    p = load("12-invalid-utf8-body.eml")
    assert p.body_text.startswith("Valid é, invalid \ufffd")
    assert p.body_text.endswith("end.")
    assert has_defect(p, "invalid utf-8 bytes")


def test_13_hostile_html():
    p = load("13-hostile-html.eml")
    html = p.body_html.lower()
    for bad in ("<script", "onload", "onclick", "javascript:", "data:", "<form", "<iframe", "position", "<style",
                "evil.example", ' src="https://tracker', '<img src="https'):
        assert bad not in html, bad
    assert p.has_remote_content is True
    assert 'data-remote-src="https://tracker.example/open.gif?u=42"' in p.body_html
    assert "Dear customer, please pay here." in p.body_text  # text derived from the HTML
    assert "document.cookie" not in p.body_text and "Invoice" not in p.body_text


def test_14_auto_reply():
    p = load("14-auto-reply.eml")
    assert p.automatic_reason == "auto-reply (Auto-Submitted: auto-replied)"
    assert p.in_reply_to == "ticket-mail-1@corp.test"
    assert p.references == ["ticket-mail-0@corp.test", "ticket-mail-1@corp.test"]


def test_15_dsn_bounce():
    p = load("15-dsn-bounce.eml")
    assert p.automatic_reason and "Return-Path" in p.automatic_reason
    assert p.from_addr == "mailer-daemon@mx.corp.test"
    assert "could not be delivered" in p.body_text
    types = [a.content_type for a in p.attachments]
    assert types == ["message/delivery-status", "text/rfc822-headers"]
    assert b"Status: 5.1.1" in p.attachments[0].data


def test_16_inline_cid_image():
    p = load("16-inline-cid-image.eml")
    (img,) = p.attachments
    assert (img.content_id, img.is_inline, img.content_type) == ("shot-1@leo", True, "image/png")
    assert img.filename == "attachment-1.png"
    assert '<img src="cid:shot-1@leo" alt="screenshot">' in p.body_html
    assert p.has_remote_content and 'data-remote-src="http://cdn.example/logo.png"' in p.body_html


def test_17_calendar_invite():
    p = load("17-calendar-invite.eml")
    assert p.body_text == "You are invited to the review meeting."
    cal, ics = p.attachments
    assert cal.content_type == "text/calendar" and cal.filename.endswith(".ics") and b"BEGIN:VEVENT" in cal.data
    assert ics.filename == "invite.ics"


def test_18_zip_attachment():
    import io
    import zipfile

    p = load("18-zip-attachment.eml")
    (z,) = p.attachments
    assert (z.filename, z.content_type) == ("logs.zip", "application/zip")
    assert zipfile.ZipFile(io.BytesIO(z.data)).read("hello.txt") == b"hello from a zip\n"


def test_19_truncated_header_only():
    p = load("19-truncated-header-only.eml", truncated=True)
    assert TRUNCATED_DEFECT in p.defects
    assert p.subject == "Huge attachment" and p.message_id == "huge-0019@customer.example"
    assert p.body_text == "" and p.attachments == []


def test_20_no_header_separator():
    p = load("20-no-header-separator.eml")
    assert p.message_id == "nosep-0020@customer.example" and p.from_addr == "paul@customer.example"
    assert "more body" in p.body_text


def test_21_deep_nesting_is_bounded():
    p = load("21-deep-nesting.eml")
    assert has_defect(p, "nesting deeper than")


def test_22_bad_date_and_addresses():
    p = load("22-bad-date-and-addresses.eml")
    assert (p.from_addr, p.from_name) == ("rita@customer.example", "Rita (Sales)")
    assert p.to == [] and p.cc == ["ok@customer.example"]
    assert p.date is None and has_defect(p, "unreadable Date")
    assert has_defect(p, "invalid address")
    assert p.message_id == "no-angle-brackets-0022@customer.example"


def test_23_24_garbage_and_empty():
    garbage, empty = load("23-binary-garbage.eml"), load("24-empty.eml")
    assert garbage.message_key.startswith("sha256:") and garbage.from_addr is None
    assert empty.message_key == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_25_html_only_gets_text():
    p = load("25-html-only-quoted-printable.eml")
    assert p.body_text == "Café\n\nFirst paragraph.\n\nSecond one & more."
    assert "<h1>Café</h1>" in p.body_html and "script" not in p.body_html


def test_26_bad_transfer_encodings_and_codecs():
    p = load("26-bad-base64-and-utf7.eml")
    assert "Hi Mom -☺-!" in p.body_text
    assert "codec that is not a text encoding" in p.body_text
    assert has_defect(p, "unknown charset 'zlib'")
    assert p.attachments[0].filename == "broken.pdf"
