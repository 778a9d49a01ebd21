"""The fast MIME splitter (app/scanner/mime.py) gives exactly what the stdlib parser gives, or nothing.

Three kinds of checks:

1. Differential: on the benchmark corpus, every file of tests/corpus/, a deterministic generator
   of varied MIME structures and random mutations of all of them (truncated, lines deleted or
   doubled), ``parse_message`` with the fast path equals ``parse_message`` with the stdlib
   forced, and every tree the splitter accepts equals the stdlib's part by part.
2. The splitter really accepts the common shapes, so a change that makes it refuse everything
   (still "correct", but slow again) fails here.
3. It refuses the odd cases it is not meant to reproduce.
"""

from __future__ import annotations

import base64
import quopri
import random
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32
from pathlib import Path

import pytest

from app.scanner import bodies, mime, parse
from app.scanner.mime import FastPart, split_message
from bench.corpus import build_message
from tests.unit.scanner.helpers import raw

CORPUS = Path(__file__).resolve().parents[2] / "corpus"
_STDLIB = BytesParser(policy=compat32)


# --- comparing ------------------------------------------------------------------


def parse_both(data: bytes, *, truncated: bool = False, monkeypatch: pytest.MonkeyPatch):
    """``parse_message`` of ``data`` through the fast path and with the stdlib forced."""
    message = raw(data, truncated=truncated)
    monkeypatch.setattr(parse, "FAST_MIME", True)
    fast = parse.parse_message(message)
    monkeypatch.setattr(parse, "FAST_MIME", False)
    slow = parse.parse_message(message)
    monkeypatch.setattr(parse, "FAST_MIME", True)
    return fast, slow


def assert_same_tree(fast: FastPart, std: Message, where: str = "root") -> None:
    """The part trees agree on everything parse.py can ask of them."""
    assert isinstance(fast, FastPart), where
    assert std.defects == [], f"{where}: accepted although the stdlib saw {std.defects}"
    assert list(fast.raw_items()) == list(std.raw_items()), where
    assert fast.is_multipart() == std.is_multipart(), where
    assert fast.get_default_type() == std.get_default_type(), where
    assert fast.get_content_type() == std.get_content_type(), where
    assert fast.get_filename() == std.get_filename(), where
    assert fast.get_param("name") == std.get_param("name"), where
    assert fast.get_content_charset() == std.get_content_charset(), where
    assert fast.get_boundary() == std.get_boundary(), where
    if std.is_multipart():
        assert fast.get_payload(decode=True) is None, where
        fparts, sparts = fast.get_payload(), std.get_payload()
        assert len(fparts) == len(sparts), where
        for n, (f, s) in enumerate(zip(fparts, sparts, strict=True)):
            assert_same_tree(f, s, f"{where}.{n}")
    else:
        assert fast.get_payload(decode=True) == std.get_payload(decode=True), where
        # base64 decoding may add a defect, and must add the same one
        assert [type(d) for d in fast.defects] == [type(d) for d in std.defects], where
        assert fast.get_payload() == std.get_payload(), where


def check(data: bytes, monkeypatch: pytest.MonkeyPatch) -> tuple[bool, bool]:
    """Compare both paths on ``data`` (whole and header-only); which of the two were accepted."""
    accepted = []
    for truncated in (False, True):
        tree = split_message(data, headers_only=truncated)
        if tree is not None:
            assert_same_tree(tree, _STDLIB.parsebytes(data, headersonly=truncated))
        fast, slow = parse_both(data, truncated=truncated, monkeypatch=monkeypatch)
        assert fast == slow, f"truncated={truncated}: {data[:300]!r}"
        accepted.append(tree is not None)
    return accepted[0], accepted[1]


# --- a generator of varied messages ---------------------------------------------------


WORDS = "order invoice Bestellung café naïve question printer ünïcödé report -- == renewal".split()
BCHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'()+_,-./:=?"


def _text(rng: random.Random, lines: int) -> str:
    return "\n".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 12))) for _ in range(lines))


def _boundary(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.3:
        return f"=_{rng.getrandbits(48):x}"
    if kind < 0.5:
        return f"----=_Part_{rng.randint(0, 99999)}_{rng.getrandbits(32)}.{rng.getrandbits(20)}"
    return "".join(rng.choice(BCHARS) for _ in range(rng.randint(1, 40))).rstrip(" ")


def _content_type_multipart(rng: random.Random, subtype: str, boundary: str) -> str:
    quoted = rng.random() < 0.7 or any(c in boundary for c in "'()+,/:=? ")
    value = f'"{boundary}"' if quoted else boundary
    key = rng.choice(["boundary", "boundary", "Boundary", "BOUNDARY"])
    form = rng.random()
    if form < 0.5:
        return f"Content-Type: multipart/{subtype}; {key}={value}"
    if form < 0.7:
        return f"Content-Type: multipart/{subtype};\n\t{key}={value}"
    if form < 0.85:
        return f'Content-Type: multipart/{subtype}; type="text/html"; {key}={value}'
    return f"Content-Type: Multipart/{subtype.upper()} ; {key} = {value} ; charset=us-ascii"


def _filename_params(rng: random.Random, name: str) -> str:
    form = rng.randrange(6)
    if form == 0:
        return f'filename="{name}"'
    if form == 1:
        return f"filename={name.replace(' ', '_')}"
    if form == 2:
        encoded = "".join(c if c.isalnum() or c in ".-" else f"%{b:02X}" for c in name for b in c.encode())
        return f"filename*=utf-8''{encoded}"
    if form == 3:
        return f'filename*0="{name[:3]}"; filename*1="{name[3:]}"'
    if form == 4:
        word = base64.b64encode(name.encode()).decode()
        return f'filename="=?utf-8?b?{word}?="'
    return f'filename="{name}"; size=1234'


def _leaf(rng: random.Random) -> list[str]:
    """A leaf part's lines (headers, blank line, body)."""
    kind = rng.randrange(9)
    if kind == 8:  # no headers at all: text/plain by default
        return ["", _text(rng, rng.randint(0, 4))]
    if kind in (0, 1, 2):
        sub = "plain" if kind != 2 else "html"
        body = _text(rng, rng.randint(0, 8))
        if sub == "html":
            body = f"<html><body><p>{body}</p><img src='https://t.test/p.gif'></body></html>"
        charset = rng.choice(["utf-8", "iso-8859-1", None, '"UTF-8"'])
        raw_body = body.encode("latin-1" if charset == "iso-8859-1" else "utf-8", "replace")
        cte = rng.choice(["7bit", "8bit", "quoted-printable", "base64", None, "Quoted-Printable"])
        head = [f"Content-Type: text/{sub}" + (f"; charset={charset}" if charset else "")]
        if cte:
            head.append(f"Content-Transfer-Encoding: {cte}")
        if cte and cte.lower() == "quoted-printable":
            text = quopri.encodestring(raw_body).decode("ascii")
        elif cte == "base64":
            text = base64.encodebytes(raw_body).decode("ascii")
        else:
            text = raw_body.decode("latin-1")  # the raw bytes, one char each (8-bit bodies)
        if rng.random() < 0.2:
            text += "\n--not-a-boundary--\n--=_ but still body"
        return [*head, "", text]
    data = rng.randbytes(rng.randint(0, 300))
    encoded = base64.encodebytes(data).decode("ascii")
    if kind == 3 and encoded:  # bad padding / stray characters
        encoded = encoded.rstrip("=\n") + rng.choice(["", "=", "!", "\n=="])
    if kind == 4:  # inline cid image
        head = ["Content-Type: image/png", "Content-Transfer-Encoding: base64",
                f"Content-ID: <img{rng.randint(1, 999)}@x.test>", "Content-Disposition: inline"]
    else:
        name = rng.choice(["report.pdf", "Grüße 2024.txt", "a b c.zip", "../x.bin", "naïve résumé.doc"])
        head = [f"Content-Type: application/octet-stream; name=\"{name}\"",
                "Content-Transfer-Encoding: base64",
                f"Content-Disposition: attachment; {_filename_params(rng, name)}"]
        if kind == 7:
            head = head[:1] + head[2:]  # no transfer encoding: the base64 text itself is stored
    return [*head, "", encoded.rstrip("\n") if rng.random() < 0.5 else encoded]


def _multipart(rng: random.Random, depth: int, boundaries: set[str]) -> list[str]:
    boundary = _boundary(rng)
    while boundary in boundaries:
        boundary += "x"
    boundaries.add(boundary)
    subtype = rng.choice(["mixed", "alternative", "related", "mixed"])
    head = [_content_type_multipart(rng, subtype, boundary)]
    if rng.random() < 0.1:
        head.append("Content-Transfer-Encoding: 7bit")
    lines = [*head, ""]
    if rng.random() < 0.3:
        lines.append("This is a multi-part message in MIME format.")
    for _ in range(rng.randint(1, 4)):
        ws = rng.choice(["", "", " ", "\t ", "  "])
        lines.append(f"--{boundary}{ws}")
        if depth < 3 and rng.random() < 0.3:
            lines += _multipart(rng, depth + 1, boundaries)
        else:
            lines += _leaf(rng)
        if rng.random() < 0.1:
            lines.append(f"--{boundary}-not a boundary line")
    lines.append(f"--{boundary}--" + rng.choice(["", "", " "]))
    if rng.random() < 0.3:
        lines.append(rng.choice(["", "epilogue text", "\n\nmore epilogue"]))
    return lines


def generate(seed: int) -> bytes:
    """One message: headers of many forms and a random MIME tree, LF or CRLF line ends."""
    rng = random.Random(seed)
    sender = rng.choice(["Alice", "=?utf-8?q?J=C3=BCrgen?=", '"Doe, J"'])
    head = [f"From: {sender} <a{seed}@x.test>",
            f"To: support@corp.test{', bob@y.test' if rng.random() < 0.3 else ''}",
            f"Message-ID: <gen-{seed}@x.test>", "Date: Tue, 01 Jul 2025 10:15:00 +0200"]
    subject = rng.choice(["Hello", "=?utf-8?b?R3LDvMOfZQ==?= again", "Long subject\n folded\n\tthree times",
                          "Gr\u00fc\u00dfe raw 8-bit", "", "=?iso-8859-1?q?caf=E9?="])
    head.append(f"Subject:{rng.choice([' ', '', '  ', chr(9)])}{subject}")
    if rng.random() < 0.3:
        head.append("X-Empty:")
    if rng.random() < 0.3:
        head.append("Received: from a by b;\n  Tue, 01 Jul 2025 10:15:00 +0200")
    rng.shuffle(head)
    head.append("MIME-Version: 1.0")
    if rng.random() < 0.6:
        lines = head + _multipart(rng, 0, set())
    else:
        leaf = _leaf(rng)
        lines = head + leaf if leaf[0] else [*head, *leaf]
    text = "\n".join(lines) + rng.choice(["\n", "", "\n\n"])
    if rng.random() < 0.5:
        text = text.replace("\n", "\r\n")
    return text.encode("utf-8") if rng.random() < 0.5 else text.encode("latin-1", "replace")


def mutations(data: bytes, seed: int) -> list[bytes]:
    """Damaged copies of ``data``: cut short, a line deleted, a line doubled, a line end changed."""
    rng = random.Random(seed)
    lines = data.splitlines(keepends=True)
    out = [data[: rng.randrange(len(data) + 1)] for _ in range(2)]
    if lines:
        for _ in range(2):
            k = rng.randrange(len(lines))
            out.append(b"".join(lines[:k] + lines[k + 1:]))
        k = rng.randrange(len(lines))
        out.append(b"".join(lines[: k + 1] + lines[k:]))
        k = rng.randrange(len(lines))
        out.append(b"".join(lines[:k] + [lines[k].rstrip(b"\r\n") + rng.choice([b"\n", b"\r\n", b"\r", b""])]
                            + lines[k + 1:]))
    return out


def benchmark_messages(count: int) -> list[bytes]:
    rng = random.Random(7)
    return [build_message(i, rng, matching_contacts=1000) for i in range(count)]


# --- 1. differential ---------------------------------------------------------------


def test_benchmark_corpus_same_as_stdlib(monkeypatch):
    messages = benchmark_messages(300)
    accepted = [check(m, monkeypatch) for m in messages]
    assert all(whole and head for whole, head in accepted)  # the benchmark mail is all regular


@pytest.mark.parametrize("name", sorted(p.name for p in CORPUS.glob("*.eml")))
def test_corpus_file_same_as_stdlib(name, monkeypatch):
    data = (CORPUS / name).read_bytes()
    check(data, monkeypatch)
    for damaged in mutations(data, sum(data) % 1000):
        check(damaged, monkeypatch)


def test_generated_messages_same_as_stdlib(monkeypatch):
    whole = heads = 0
    count = 400
    for seed in range(count):
        data = generate(seed)
        w, h = check(data, monkeypatch)
        whole += w
        heads += h
    # Most generated messages are regular: a splitter that refuses them is no faster than before.
    assert whole > count * 0.9, whole
    assert heads > count * 0.9, heads


def test_mutated_messages_same_as_stdlib(monkeypatch):
    sources = [generate(seed) for seed in range(1000, 1150)] + benchmark_messages(30)
    for n, data in enumerate(sources):
        for damaged in mutations(data, n):
            check(damaged, monkeypatch)


@pytest.mark.parametrize("value", [
    'multipart/mixed; boundary="abc"', "multipart/mixed; boundary=abc", "multipart/mixed;boundary=abc  ",
    'multipart/mixed; BOUNDARY = "a b c  "', 'multipart/mixed;\r\n\tboundary="=_x;y"',
    'multipart/mixed; boundary="<abc>"', "multipart/mixed; boundary=<abc>", 'multipart/mixed; boundary="a\\"b"',
    "multipart/mixed; boundary*=utf-8''abc", 'multipart/mixed; boundary*0="ab"; boundary*1="cd"',
    'multipart/mixed; boundary="abc"; boundary="def"', 'multipart/mixed; charset=x; boundary="abc"',
    'multipart/mixed; boundary=""', 'multipart/mixed; boundary="abc', "multipart/mixed; boundary=",
    "boundary=abc; boundary=def", 'multipart/mixed; x="a;b"; boundary=abc', "multipart/mixed; boundary=a\x0b",
])
def test_boundary_same_as_stdlib(value):
    msg = Message(policy=compat32)
    msg.set_raw("Content-Type", value)
    assert mime._boundary(value, [("Content-Type", value)]) == msg.get_boundary()


# --- 2. the common shapes are accepted -----------------------------------------------


def test_accepts_benchmark_simple_and_multipart():
    multipart, simple = benchmark_messages(2)  # every third benchmark message is multipart
    tree = split_message(simple)
    assert tree is not None and not tree.is_multipart()
    assert len(tree.get_payload(decode=True)) > 1000  # a leaf with its body
    tree = split_message(multipart)
    assert tree is not None and tree.is_multipart()
    alternative, attachment = tree.get_payload()
    assert [p.get_content_type() for p in alternative.get_payload()] == ["text/plain", "text/html"]
    assert attachment.get_filename() == "report-0.bin"
    assert len(attachment.get_payload(decode=True)) == 400


def test_accepts_crlf_and_quoted_printable(monkeypatch):
    data = (
        b"From: a@x.test\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nContent-Type: multipart/alternative;\r\n"
        b' boundary="b1"\r\n\r\npreamble\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n'
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\nGr=C3=BC=C3=9Fe=\r\n!\r\n--b1 \r\n"
        b"Content-Type: text/html\r\n\r\n<p>Hi</p>\r\n--b1--\r\nepilogue\r\n"
    )
    tree = split_message(data)
    assert tree is not None
    plain, html = tree.get_payload()
    assert plain.get_payload(decode=True) == "Grüße!".encode()
    assert html.get_payload(decode=True) == b"<p>Hi</p>"
    fast, slow = parse_both(data, monkeypatch=monkeypatch)
    assert fast == slow and fast.body_text == "Grüße!"


def test_accepts_8bit_leaf_headers(monkeypatch):
    # Raw UTF-8 filenames in Content-Type are common; the stdlib reads those values as Header objects.
    data = _mp(
        '--B\nContent-Type: application/pdf; name="Grüße.pdf"\nContent-Transfer-Encoding: base64\n\nAAAA\n'
        '--B\nContent-Type: text/plain; charset="utf-8"\nContent-Transfer-Encoding: 8bït\n\nGrüße\n--B--\n'
    )
    tree = split_message(data)
    assert tree is not None
    assert [p.get_payload(decode=True) for p in tree.get_payload()] == [b"\0\0\0", "Grüße".encode()]
    fast, slow = parse_both(data, monkeypatch=monkeypatch)
    assert fast == slow and fast.attachments[0].filename.endswith(".pdf")


def test_accepts_header_only_message():
    data = (CORPUS / "19-truncated-header-only.eml").read_bytes()
    tree = split_message(data, headers_only=True)
    assert tree is not None and len(list(tree.raw_items())) > 3


def test_nesting_limit_is_below_the_walkers():
    assert mime.MAX_NESTING < bodies.MAX_DEPTH


# --- 3. odd cases are refused ----------------------------------------------------------


def _mp(body: str, ctype: str = 'multipart/mixed; boundary="B"', extra: str = "") -> bytes:
    return f"From: a@x.test\nContent-Type: {ctype}\n{extra}\n{body}".encode()


LEAF = "Content-Type: text/plain\n\nhello\n"
REFUSED = {
    "bare CR": b"From: a@x.test\rSubject: x\n\nbody",
    "bare CR in body": b"From: a@x.test\n\nbody\rmore",
    "envelope From line": b"From someone Tue Jul 1 10:15:00 2025\nFrom: a@x.test\n\nbody",
    "header line without colon": b"From: a@x.test\nnot a header\n\nbody",
    "space before colon": b"From: a@x.test\nSubject : x\n\nbody",
    "empty header name": b"From: a@x.test\n: x\n\nbody",
    "first line is a continuation": b" folded\nFrom: a@x.test\n\nbody",
    "no blank line": b"From: a@x.test\nSubject: x",
    "empty": b"",
    "message/rfc822": _mp(f"--B\nContent-Type: message/rfc822\n\n{LEAF}--B--\n"),
    "message at the top": b"From: a@x.test\nContent-Type: message/rfc822\n\nFrom: b@x.test\n\nx\n",
    "multipart/digest": _mp(f"--B\n{LEAF}--B--\n", 'multipart/digest; boundary="B"'),
    "no boundary": _mp(f"--B\n{LEAF}--B--\n", "multipart/mixed"),
    "empty boundary": _mp(f"--\n{LEAF}----\n", 'multipart/mixed; boundary=""'),
    "same boundary nested": _mp(
        f'--B\nContent-Type: multipart/mixed; boundary="B"\n\n--B\n{LEAF}--B--\n--B--\n'),
    "base64 multipart": _mp(f"--B\n{LEAF}--B--\n", extra="Content-Transfer-Encoding: base64\n"),
    "no start boundary": _mp(f"{LEAF}--B--\n"),
    "close before start": _mp(f"--B--\n--B\n{LEAF}--B--\n"),
    "no close boundary": _mp(f"--B\n{LEAF}"),
    "inner close missing": _mp(f'--B\nContent-Type: multipart/alternative; boundary="C"\n\n--C\n{LEAF}--B--\n'),
    "zero subparts": _mp("--B\n--B--\n"),
    "doubled boundary line": _mp(f"--B\n--B\n{LEAF}--B--\n"),
    "part without blank line": _mp("--B\nContent-Type: text/plain\n--B--\n"),
    "uuencode": b"From: a@x.test\nContent-Transfer-Encoding: x-uuencode\n\nbegin 644 a\n`\nend\n",
    "8-bit multipart Content-Type": _mp(f"--B\n{LEAF}--B--\n", 'multipart/mixed; boundary="B"; name="é"'),
    "deep nesting": _mp(
        "".join(f'--B{n}\nContent-Type: multipart/mixed; boundary="B{n + 1}"\n\n' for n in range(20))
        + f"--B20\n{LEAF}" + "".join(f"--B{n}--\n" for n in range(20, -1, -1)),
        'multipart/mixed; boundary="B0"'),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refuses_odd_cases(name, monkeypatch):
    data = REFUSED[name]
    assert split_message(data) is None
    check(data, monkeypatch)  # and the stdlib path still gives the answer


def test_refuses_header_only_oddities():
    assert split_message(b"From x\nA: b\n", headers_only=True) is None
    assert split_message(b"A: b\nnot a header\n\nbody", headers_only=True) is None
    assert split_message(b"A: b\r\nSubj", headers_only=True) is None


def test_long_lines_without_a_colon_are_refused_in_linear_time():
    """A header block holding a long line without a colon (an unwrapped base64 body right after a
    boundary, or malformed spam) is refused by one anchored match per line. Searching instead
    retried from every position of the line: 17 s for 60 KB, hours for a megabyte, so a
    regression here ends in the suite's per-test timeout rather than a slow pass."""
    line = b"QUJD" * 250_000  # 1 MB, no colon, no blank
    assert split_message(line + b"\n\nbody") is None
    assert split_message(b"Subject: x\n" + line + b"\n\nbody") is None
    assert split_message(b"Subject: x\n" + line, headers_only=True) is None
    part = _mp(f"--B\n{line.decode()}\n--B--\n")
    assert split_message(part) is None
