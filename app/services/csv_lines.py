"""Reading a CSV file as a stream of decoded lines, within limits, for the record imports.

A file comes as a path, its bytes or its text. Its bytes are decoded as UTF-8
(a byte-order mark dropped) a line at a time, and reading stops with
:class:`ImportFailed`, whose message says which limit in words, past the byte
limit of the import or at a line longer than 1 MiB (no file of records has one:
a device such as /dev/zero, or a binary file). :class:`ReadCount` tells the
caller how far it has read, for a progress bar.
"""

from __future__ import annotations

import codecs
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

MAX_LINE_BYTES = 1024 * 1024
_READ = 64 * 1024


class ImportFailed(ValueError):
    """The file as a whole cannot be imported (unreadable, not UTF-8, wrong header); says why."""


@dataclass
class ReadCount:
    """Bytes of the file read so far."""

    bytes: int = 0


def _size_text(n: int) -> str:
    return f"{n / (1024 * 1024):.0f} MiB" if n >= 1024 * 1024 else f"{n:,} bytes"


def too_big(max_bytes: int) -> ImportFailed:
    """The refusal of a file past ``max_bytes``, in words."""
    return ImportFailed(f"The file is larger than {_size_text(max_bytes)}, the most one import reads "
                        "(IMPORT_MAX_BYTES). Nothing was imported: split the file and import the parts.")


def _binary_lines(stream, max_bytes: int, read: ReadCount | None = None) -> Iterator[str]:
    """Decoded lines (UTF-8, a byte-order mark dropped) of a binary stream, within the limits."""
    read = read or ReadCount()
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    total, line_no, pending = 0, 1, []
    pending_bytes = 0
    while True:
        piece = stream.readline(_READ)
        total += len(piece)
        read.bytes = total
        if total > max_bytes:
            raise too_big(max_bytes)
        try:
            text = decoder.decode(piece, final=not piece)
        except UnicodeDecodeError as exc:
            raise ImportFailed(f"The file is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} on line {line_no}). "
                               "Save it as “CSV UTF-8” and import it again.") from exc
        if not piece:
            if pending or text:
                yield "".join(pending) + text
            return
        pending.append(text)
        pending_bytes += len(piece)
        if piece.endswith(b"\n"):
            yield "".join(pending)
            pending, pending_bytes = [], 0
            line_no += 1
        elif pending_bytes > MAX_LINE_BYTES:
            raise ImportFailed(f"Line {line_no} is longer than {_size_text(MAX_LINE_BYTES)}: this is not a CSV file of "
                               "records (a device or a binary file?). Nothing was imported.")


def source_lines(source: bytes | str | Path, max_bytes: int, read: ReadCount | None = None) -> Iterable[str]:
    """The file's lines, whether given as a path, its bytes or its text, read as a stream."""
    if isinstance(source, Path):
        try:
            stream = source.open("rb")
        except OSError as exc:
            raise ImportFailed(f"Cannot read {source}: {exc.strerror or exc}.") from exc
        return _closing_lines(stream, max_bytes, source, read)
    if isinstance(source, bytes):
        return _binary_lines(io.BytesIO(source), max_bytes, read)
    if len(source) > max_bytes:
        raise too_big(max_bytes)
    return io.StringIO(source.removeprefix("\ufeff"), newline="")


def _closing_lines(stream, max_bytes: int, path: Path, read: ReadCount | None) -> Iterator[str]:
    with stream:
        try:
            size = path.stat().st_size if path.is_file() else 0
        except OSError:
            size = 0
        if size > max_bytes:  # a regular file says its size: refused before reading a byte
            raise too_big(max_bytes)
        try:
            yield from _binary_lines(stream, max_bytes, read)
        except OSError as exc:
            raise ImportFailed(f"Cannot read {path}: {exc.strerror or exc}.") from exc
