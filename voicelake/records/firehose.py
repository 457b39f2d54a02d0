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
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import NamedTuple

from voicelake.model import Failure
from voicelake.records.record_fields import STAGE

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


_HOUR_FOLDER = re.compile(r"(?:^|/)([0-9]{4})/([0-9]{2})/([0-9]{2})/([0-9]{2})/[^/]*\Z", re.ASCII)


def hour_folder(key: str) -> datetime | None:
    """The UTC hour of the Firehose ``YYYY/MM/dd/HH/`` folder an object key sits in, or None."""
    match = _HOUR_FOLDER.search(key)
    if match is None:
        return None
    try:
        return datetime(*map(int, match.groups()))
    except ValueError:
        return None


def listed_for(key: str, day: date, lookahead_hours: int, *, lookbehind_hours: int = 1) -> bool:
    """Whether a run for ``day`` lists the hour folder of ``key`` (``firehose_hour_prefixes``).

    A record whose call date is outside the run's days is left to the run of its own day when that
    run lists it; when no run would, it is reported instead of being dropped (``date_out_of_range``).
    """
    hour = hour_folder(key)
    if hour is None:
        return False
    since_day = hour - datetime(day.year, day.month, day.day)  # a difference: no overflow in 9999
    return -timedelta(hours=lookbehind_hours) <= since_day < timedelta(days=1, hours=lookahead_hours)


# --------------------------------------------------------------------------- splitting

# Firehose buffers at most 128 MiB before it writes an object, so a real record object is smaller
# than this; the cap bounds what one object can cost a worker (its bytes and their text: a few
# times the cap at most).
DEFAULT_MAX_OBJECT_MB = 256
MB = 1 << 20


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
# Where a record may start: "{" and a member name with its ":" ("{}" is no record worth a resync,
# and random bytes hold it often enough to split a junk object). Names are bounded so that crafted
# input cannot make every match rescan a long run; a literal first character keeps the search fast.
_RECORD_START = re.compile(r'\{[ \t\r\n]*"(?:[^"\\\x00-\x1f]|\\.){0,256}"[ \t\r\n]*:')
_AFTER_SCALAR = _GAP_CHARS + '{["'  # what may follow a top-level number or literal
_NESTED_AFTER = ":,["  # a "{" after these is a value inside something, never a record's start
_FIRST_WINDOW = 256  # characters decoded at first; doubled (and more) when a value runs past it


def too_large_detail(what: str, max_bytes: int) -> str:
    return (f"the object {what} than the {max_bytes / MB:g} MB a record object may hold "
            "(--max_record_object_mb); none of it was read")


class _Broken(Exception):
    """No JSON value can be decoded at a position; the message says why."""


def split_json_objects(data: bytes, *, max_bytes: int = DEFAULT_MAX_OBJECT_MB * MB
                       ) -> Iterator[tuple[int, dict | SplitError]]:
    """Split a Firehose-style object into its JSON records: ``(byte offset, object)`` per record,
    or ``(byte offset, SplitError)`` for a part that is not a usable record.

    Accepts gzip (detected by the magic bytes, never by name; concatenated members too), a UTF-8
    BOM, and records back to back (``}{``) or separated by JSON whitespace (newline-delimited
    JSON included), BOMs or NUL padding. Offsets count bytes of the decompressed stream, so
    ``data[offset:]`` of an uncompressed object starts with the record.

    Whatever the bytes, the cost is linear in their size and the memory bounded by ``max_bytes``:
    an object larger than that, or inflating to more, is one ``too_large`` error (nothing else
    of it is read), and an object with nothing but whitespace or NUL padding is one
    ``empty_object`` error. A broken record and everything up to the next usable record (see
    ``_resync``) is one ``bad_json`` error, so a junk object is one error, not one per brace; a
    top-level value that is not an object is a ``not_an_object`` error, unless junk follows it:
    then it is where the junk starts.
    """
    if len(data) > max_bytes:
        yield 0, SplitError("too_large", too_large_detail(f"is {len(data)} bytes, more", max_bytes))
        return
    raw, gzip_error = _gunzip(data, max_bytes)
    if gzip_error is not None and gzip_error.reason == "too_large":
        yield 0, gzip_error
        return
    try:
        text, escaped = raw.decode("utf-8"), False
    except UnicodeDecodeError:  # keep going: one bad record must not hide the others
        text, escaped = raw.decode("utf-8", "surrogateescape"), True
    byte_offset = _ByteOffsets(text)
    pos = _BETWEEN.match(text).end()
    window = _FIRST_WINDOW
    found = False
    # A value that is not an object waits for what follows: before a broken region it is the
    # start of that junk (random bytes often begin with a digit), not an error of its own.
    pending = None
    while pos < len(text):
        found = True
        try:
            value, end = _decode_at(text, pos, window)
        except _Broken as broken:
            start = pending[0] if pending else byte_offset(pos)
            pending = None
            resync = _resync(text, pos)
            skipped = byte_offset(resync) - start
            until = "the end of the object" if resync == len(text) else "the next record"
            yield start, SplitError("bad_json", f"not valid JSON ({broken}); {skipped} bytes skipped to {until}")
            pos = resync
            continue
        if pending:
            yield pending
            pending = None
        window = max(_FIRST_WINDOW, 2 * (end - pos))  # the next record is likely about as long
        if escaped and _ESCAPED_BYTE.search(text, pos, end):
            yield byte_offset(pos), SplitError("bad_utf8", "the record's bytes are not valid UTF-8")
        elif not isinstance(value, dict):
            pending = byte_offset(pos), SplitError("not_an_object", f"a JSON {type(value).__name__}, not an object")
        else:
            yield byte_offset(pos), value
        pos = _BETWEEN.match(text, end).end()
    if pending:
        yield pending
    if gzip_error is not None:
        yield len(raw), gzip_error
    elif not found:
        what = "empty" if not raw else f"{len(raw)} bytes of whitespace or NUL padding, no record"
        yield 0, SplitError("empty_object", f"the object holds no record: {what}")


def _gunzip(data: bytes, max_bytes: int) -> tuple[bytes | bytearray, SplitError | None]:
    """Inflate every gzip member, at most ``max_bytes`` in all; on corruption keep what inflated
    so far (its records survive).

    Two passes: the first only counts, so a gzip bomb costs a worker one piece of memory and stops
    one byte past the cap; the second fills a buffer of the exact size.
    """
    if not data.startswith(_GZIP_MAGIC):
        return data, None
    size = 0
    for piece in _inflated_pieces(data):
        if isinstance(piece, SplitError):
            break
        size += len(piece)
        if size > max_bytes:
            return b"", SplitError("too_large", too_large_detail("inflates to more", max_bytes))
    out, filled, error = bytearray(size), 0, None
    view = memoryview(out)
    for piece in _inflated_pieces(data):
        if isinstance(piece, SplitError):
            error = piece
            break
        view[filled:filled + len(piece)] = piece
        filled += len(piece)
    return out, error


_PIECE = 1 << 20


def _inflated_pieces(data: bytes) -> Iterator[bytes | SplitError]:
    """The inflated bytes of every gzip member, in pieces of at most ``_PIECE``; last a SplitError
    if a member is corrupt or truncated, or other bytes follow the last one (NUL padding aside)."""
    rest = data
    while rest.startswith(_GZIP_MAGIC):
        inflater, pending = zlib.decompressobj(wbits=31), rest
        while not inflater.eof:
            try:
                piece = inflater.decompress(pending, _PIECE)
            except zlib.error as exc:
                yield SplitError("bad_gzip", f"corrupt gzip member: {exc}")
                return
            if not piece and len(inflater.unconsumed_tail) == len(pending):  # no input left to use
                yield SplitError("bad_gzip", "gzip stream is truncated")
                return
            pending = inflater.unconsumed_tail
            if piece:
                yield piece
        rest = inflater.unused_data
    if rest.strip(b"\x00"):
        yield SplitError("bad_gzip", f"{len(rest)} bytes after the last gzip member")


def _decode_at(text: str, pos: int, window: int) -> tuple[object, int]:
    """The JSON value starting at ``text[pos]`` and the index after it, or ``_Broken``.

    Decodes a slice, not the whole text: building a ``JSONDecodeError`` counts the lines before
    the error, which on the whole text costs its size up to ``pos`` for every failed attempt
    (quadratic over a junk object). The slice grows fourfold while the value may run past it.
    """
    size = window
    while True:
        stop = min(len(text), pos + size)
        chunk = text[pos:stop]
        try:
            value, end = _DECODER.raw_decode(chunk)
        except json.JSONDecodeError as exc:
            # An error at the slice's end, or a string the end cut open, may be the cut's doing.
            if stop == len(text) or not (exc.msg.startswith("Unterminated string") or exc.pos >= len(chunk) - 8):
                raise _Broken(exc.msg) from None
        except RecursionError:
            raise _Broken("nested too deeply") from None
        else:
            if stop == len(text) or end < len(chunk):  # a number the cut shortened ends at the cut
                if pos + end < len(text) and not isinstance(value, (dict, list, str)) \
                        and text[pos + end] not in _AFTER_SCALAR:  # "03", "1x", "truex": no JSON text
                    raise _Broken(f"a {type(value).__name__} runs into other text")
                return value, pos + end
        size *= 4


def _resync(text: str, broken_at: int) -> int:
    """Where the next record starts after a broken one at ``broken_at`` (``len(text)`` if none).

    That is the first ``_RECORD_START`` after it that either follows a ``}`` (in JSON text ``}``
    and ``{`` never meet outside strings, so a record starts there; it is reported on its own even
    if broken too), or opens an object that decodes whole and is followed, after padding, by
    another ``{`` or the end (the record after a truncated one has no ``}`` before it).

    A start after ``:``, ``,`` or ``[`` is a value nested in the broken record and is never tried,
    nor is one inside an object already decoded, so no stretch of text is decoded over and over
    and the cost is linear in the size of the broken region. The price: a record right after a
    cut at one of those three characters is taken into the broken region (reported, not lost
    silently). Random bytes hold no such start, so a junk object resyncs only at its end.
    """
    decoded_until = broken_at + 1
    for start in _RECORD_START.finditer(text, broken_at + 1):
        pos = start.start()
        if pos < decoded_until:
            continue
        before = pos - 1
        while before > broken_at and text[before] in _GAP_CHARS:
            before -= 1
        if before > broken_at and text[before] == "}":  # "}" and "{" never meet outside strings
            return pos
        if before > broken_at and text[before] in _NESTED_AFTER:
            continue
        try:
            value, end = _decode_at(text, pos, _FIRST_WINDOW)
        except _Broken:
            continue
        after = _BETWEEN.match(text, end).end()
        if after == len(text) or text[after] == "{":
            return pos
        decoded_until = end
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


def read_records(data: bytes, *, source: str, source_key: str,
                 max_bytes: int = DEFAULT_MAX_OBJECT_MB * MB) -> Iterator[Sourced | Failure]:
    """``split_json_objects`` with provenance attached and split errors turned into Failures."""
    for offset, item in split_json_objects(data, max_bytes=max_bytes):
        if isinstance(item, SplitError):
            yield Failure(stage=STAGE, reason=item.reason, detail=str(item), source=source,
                          source_key=source_key, source_offset=offset)
        else:
            yield Sourced(item, source_key, offset)
