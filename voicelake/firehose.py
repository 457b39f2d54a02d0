"""Firehose record objects: which hour folders to read, and how one object splits into records.

Connect CTRs and archived Chime streaming-status events reach S3 through Kinesis Data Firehose,
filed under ``YYYY/MM/dd/HH/`` (the UTC *arrival* hour) as JSON objects concatenated with no
delimiter (or newline-delimited), maybe gzip, delivered at least once (``../shared/domain/records.md``).
The splitter here is also what reads a single SDR object, which may be gzip or carry a BOM.
"""
from __future__ import annotations

import json
import re
import zlib
from datetime import date, datetime, timedelta
from typing import Iterator, NamedTuple

from voicelake.model import Failure
from voicelake.record_fields import STAGE


# --------------------------------------------------------------------------- key planning

def date_range(start: date, end: date) -> list[date]:
    """The dates from ``start`` to ``end``, both included."""
    if end < start:
        raise ValueError(f"end date {end} is before start date {start}")
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def firehose_hour_prefixes(start_date: date, end_date: date, lookahead_hours: int, *,
                           lookbehind_hours: int = 1, base: str = "") -> list[str]:
    """The Firehose ``YYYY/MM/dd/HH/`` folders to list for calls that start on ``start_date`` ..
    ``end_date`` (UTC, inclusive).

    Firehose files an object under the arrival hour of its *oldest* record, so records of a day
    land later: at the call's end, on re-delivery after an update (hours or days later) — hence
    ``lookahead_hours`` after the last day. ``lookbehind_hours`` (default 1) covers the other edge:
    a record that arrives just after midnight can share an object (buffered up to 15 minutes)
    with older records and be filed under the previous day's last hour. ``base`` is the part of
    the key before the date folders, prepended as is (Firehose does not add a ``/`` either).
    """
    if end_date < start_date:
        raise ValueError(f"end date {end_date} is before start date {start_date}")
    if lookahead_hours < 0 or lookbehind_hours < 0:
        raise ValueError("look-ahead and look-behind hours must be >= 0")
    first = datetime(start_date.year, start_date.month, start_date.day) - timedelta(hours=lookbehind_hours)
    stop = datetime(end_date.year, end_date.month, end_date.day) + timedelta(days=1, hours=lookahead_hours)
    count = (stop - first) // timedelta(hours=1)
    return [f"{base}{first + timedelta(hours=h):%Y/%m/%d/%H}/" for h in range(count)]


# --------------------------------------------------------------------------- splitting

class SplitError(ValueError):
    """A part of an object that is not a usable record; ``reason`` is a ``REASONS`` key."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


_GZIP_MAGIC = b"\x1f\x8b"
_GAP_CHARS = " \t\r\n\ufeff\x00"  # whitespace, BOMs and NUL padding between records
_BETWEEN = re.compile(f"[{_GAP_CHARS}]*")
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")  # what surrogateescape makes of non-UTF-8 bytes
_DECODER = json.JSONDecoder()


def split_json_objects(data: bytes) -> Iterator[tuple[int, dict | SplitError]]:
    """Split a Firehose-style object into its JSON records: ``(byte offset, object)`` per record,
    or ``(byte offset, SplitError)`` for a part that is not a usable record.

    Accepts gzip (detected by the magic bytes, never by name; concatenated members too), a UTF-8
    BOM, and records back to back (``}{``) or separated by JSON whitespace (newline-delimited
    JSON included), BOMs or NUL padding. Offsets count bytes of
    the decompressed stream, so ``data[offset:]`` of an uncompressed object starts with the
    record. After a broken record the splitter resyncs (see ``_resync``) so the records after it
    still come out. One pass over one decoded string with index positions: linear in the size of
    well-formed input.
    """
    raw, gzip_error = _gunzip(data)
    try:
        text, escaped = raw.decode("utf-8"), False
    except UnicodeDecodeError:  # keep going: one bad record must not hide the others
        text, escaped = raw.decode("utf-8", "surrogateescape"), True
    byte_offset = _ByteOffsets(text)
    pos = _BETWEEN.match(text).end()
    while pos < len(text):
        try:
            value, end = _DECODER.raw_decode(text, pos)
        except (json.JSONDecodeError, RecursionError) as exc:
            yield byte_offset(pos), SplitError("bad_json", f"not valid JSON: {exc}")
            pos = _resync(text, pos)
            continue
        if escaped and _ESCAPED_BYTE.search(text, pos, end):
            yield byte_offset(pos), SplitError("bad_utf8", "the record's bytes are not valid UTF-8")
        elif not isinstance(value, dict):
            yield byte_offset(pos), SplitError("not_an_object", f"a JSON {type(value).__name__}, not an object")
        else:
            yield byte_offset(pos), value
        pos = _BETWEEN.match(text, end).end()
    if gzip_error is not None:
        yield len(raw), gzip_error


def _gunzip(data: bytes) -> tuple[bytes, SplitError | None]:
    """Inflate every gzip member; on corruption keep what inflated so far (its records survive)."""
    if not data.startswith(_GZIP_MAGIC):
        return data, None
    parts, rest = [], data
    while rest.startswith(_GZIP_MAGIC):
        inflater = zlib.decompressobj(wbits=31)
        try:
            parts.append(inflater.decompress(rest))
        except zlib.error as exc:
            return b"".join(parts), SplitError("bad_gzip", f"corrupt gzip member: {exc}")
        if not inflater.eof:
            return b"".join(parts), SplitError("bad_gzip", "gzip stream is truncated")
        rest = inflater.unused_data
    if rest.strip(b"\x00"):
        return b"".join(parts), SplitError("bad_gzip", f"{len(rest)} bytes after the last gzip member")
    return b"".join(parts), None


def _resync(text: str, broken_at: int) -> int:
    """Where the next record starts after a broken one at ``broken_at``.

    That is the next ``{`` that either follows a ``}`` with only whitespace between (``}{`` never
    occurs in valid JSON outside strings, so it is a record boundary even if the record there is
    broken too), or opens a complete object followed, after whitespace, by another ``{`` or the
    end (the record after a truncated one has no ``}`` before it). Objects nested in the broken
    record are preceded by ``:``/``,``/``[`` and followed by ``,``/``}``/``]``, so they are
    skipped. A record squeezed between garbage on both sides is lost with it. Cost: the size of
    the broken region times its nesting depth.
    """
    pos = text.find("{", broken_at + 1)
    while pos != -1:
        before = pos - 1
        while before > broken_at and text[before] in _GAP_CHARS:
            before -= 1
        if before > broken_at and text[before] == "}":
            return pos
        try:
            _, end = _DECODER.raw_decode(text, pos)
        except (json.JSONDecodeError, RecursionError):
            pass
        else:
            after = _BETWEEN.match(text, end).end()
            if after == len(text) or text[after] == "{":
                return pos
        pos = text.find("{", pos + 1)
    return len(text)


class _ByteOffsets:
    """Character index -> UTF-8 byte offset for increasing indexes, encoding each character once."""

    def __init__(self, text: str):
        self._text, self._ascii = text, text.isascii()
        self._index = self._offset = 0

    def __call__(self, index: int) -> int:
        if self._ascii:
            return index
        self._offset += len(self._text[self._index:index].encode("utf-8", "surrogateescape"))
        self._index = index
        return self._offset


class Sourced(NamedTuple):
    """A parsed record and where it came from (object key and byte offset in it)."""
    record: dict
    source_key: str
    offset: int


def read_records(data: bytes, *, source: str, source_key: str) -> Iterator[Sourced | Failure]:
    """``split_json_objects`` with provenance attached and split errors turned into Failures."""
    for offset, item in split_json_objects(data):
        if isinstance(item, SplitError):
            yield Failure(stage=STAGE, reason=item.reason, detail=str(item), source=source,
                          source_key=source_key, source_offset=offset)
        else:
            yield Sourced(item, source_key, offset)
