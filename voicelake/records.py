"""The ``records`` stage as pure functions: raw call-record bytes -> ``CallSpec`` or ``Failure``.

Inputs (facts and sources: ``../shared/domain/records.md``):

* **Connect CTRs**, written by Kinesis Data Firehose under ``YYYY/MM/dd/HH/`` (UTC *arrival* hour)
  as JSON objects concatenated with no delimiter (or newline-delimited), maybe gzip, delivered at
  least once. The KVS location is in ``Recordings[]`` entries with ``StorageType`` KINESIS_VIDEO_STREAM.
* **Chime streaming-status events** ("Chime VoiceConnector Streaming Status" EventBridge envelopes),
  archived the same way. They are the only records with a stream ARN, start fragment and leg times.
* **Chime SDRs**, one JSON object per S3 object under
  ``Amazon-Chime-Voice-Connector-SDRs/json/<vcId>/<yyyy>/<mm>/<dd>/<HH.MM.SS.mmm>_<TransactionId>``.
  Billing records: no stream ARN, so they only locate audio by stream discovery.

Conventions:

* Times are int epoch milliseconds, UTC. A call belongs to the UTC date its audio window starts
  (``CallSpec.date == utc_date(CallSpec.start_ms)``).
* Connect: one ``StreamSpan`` per KVS recording, ``channel`` None (the tracks decide the channels).
* Chime: one ``StreamSpan`` per leg (stream). Channel 0 is the customer, channel 1 the agent; see
  ``chime_call`` for how the customer leg is chosen.
* Nothing raises on bad data. Every unusable record becomes ``Failure(stage="records", reason=...)``
  with one of ``REASONS``; IDs that end up in paths pass an allow-list first (``safe_path_part``).
"""
from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Iterable, Iterator, NamedTuple
from xml.etree import ElementTree

from voicelake.model import CHIME, CONNECT, CallSpec, Failure, StreamSpan

STAGE = "records"

REASONS = {
    "bad_gzip": "the object starts like gzip but does not inflate (corrupt, truncated or trailing bytes)",
    "bad_utf8": "a record's bytes are not UTF-8",
    "bad_json": "not valid JSON (the splitter resyncs at the next record)",
    "not_an_object": "a top-level JSON value that is not an object",
    "missing_field": "a required field is absent or null",
    "bad_field": "a field has the wrong type or shape (stream ARN, fragment number, isCaller, ...)",
    "bad_timestamp": "a timestamp does not parse, is out of range, or ends before it starts",
    "unsafe_id": "an ID that would go into a path fails its allow-list",
    "no_kvs_recording": "a voice CTR with no KVS recording and no stream-ARN attribute",
    "streaming_failed": "a Chime transaction whose only streaming events are FAILED, and no SDR",
    "inconsistent_records": "records of one Chime transaction name different Voice Connectors",
}

# Allow-lists for IDs that become path parts. fullmatch, so no "$ matches before a newline" hole;
# RECORD_ID must start alphanumeric so "." and ".." never pass.
VOICE_CONNECTOR_ID = re.compile(r"[a-z0-9]{1,64}", re.ASCII)
RECORD_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", re.ASCII)

SDR_ROOT = "Amazon-Chime-Voice-Connector-SDRs/json/"
STREAMING_STATUS_DETAIL_TYPE = "Chime VoiceConnector Streaming Status"
CUSTOMER_LEG_CHOICES = ("auto", "caller", "callee")

_KVS_STREAM_ARN = re.compile(
    r"arn:aws[a-z-]*:kinesisvideo:[a-z0-9-]+:[0-9]{12}:stream/[A-Za-z0-9_.-]{1,256}/[0-9]{1,20}", re.ASCII)
_CONNECT_INSTANCE_ARN = re.compile(r"arn:aws[a-z-]*:connect:[a-z0-9-]+:[0-9]{12}:instance/(.+)", re.ASCII)
_FRAGMENT_NUMBER = re.compile(r"[0-9]{1,64}", re.ASCII)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last instant datetime can show


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


def sdr_day_prefixes(vc_ids: Iterable[str], dates: Iterable[date], *, base: str = "") -> list[str]:
    """The SDR folders ``<base>Amazon-Chime-Voice-Connector-SDRs/json/<vcId>/<yyyy>/<mm>/<dd>/``.

    SDR folders carry the call's start date and no hour, so no look-ahead is needed. To find the
    Voice Connector IDs, list ``base + SDR_ROOT`` with a ``/`` delimiter. Unsafe IDs are a
    configuration error here (ValueError), not a record failure.
    """
    vc_ids, dates = list(vc_ids), list(dates)
    for vc_id in vc_ids:
        if safe_path_part(vc_id, VOICE_CONNECTOR_ID) is None:
            raise ValueError(f"not a Voice Connector ID: {vc_id!r}")
    return [f"{base}{SDR_ROOT}{vc_id}/{day:%Y/%m/%d}/" for vc_id in vc_ids for day in dates]


class SdrKey(NamedTuple):
    vc_id: str
    date: str  # YYYY-MM-DD of the call start (the folder date)
    time: str  # HH:MM:SS.mmm of the call start (from the object name)
    transaction_id: str


_SDR_KEY = re.compile(
    r"(?:^|/)Amazon-Chime-Voice-Connector-SDRs/json/([^/]+)/([0-9]{4})/([0-9]{2})/([0-9]{2})/"
    r"([0-9]{2})\.([0-9]{2})\.([0-9]{2})\.([0-9]{3})[_-]([^/]+)\Z", re.ASCII)


def parse_sdr_key(key: str) -> SdrKey | None:
    """Split an SDR object key (under any bucket or prefix, ``s3://`` URLs too), or None if the key
    is not an SDR key. The docs' example separates time and TransactionId with ``_``, their
    template with ``-``; both are accepted (the time is fixed-width, so ``-`` is unambiguous).
    The IDs are returned as found: ``parse_sdr`` allow-lists the body's IDs.
    """
    match = _SDR_KEY.search(key)
    if match is None:
        return None
    vc_id, year, month, day, hour, minute, second, milli, transaction_id = match.groups()
    try:
        datetime(int(year), int(month), int(day), int(hour), int(minute), int(second))
    except ValueError:
        return None
    return SdrKey(vc_id, f"{year}-{month}-{day}", f"{hour}:{minute}:{second}.{milli}", transaction_id)


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


# --------------------------------------------------------------------------- values

_ISO = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:[.,]([0-9]+))?"
    r"(?:([Zz])|([+-])([0-9]{2}):?([0-9]{2}))", re.ASCII)


def iso_to_ms(text: str) -> int:
    """ISO-8601 with a zone (``2024-05-14T15:04:36Z``, ``…T15:02:11.402Z``, ``+02:00``) -> epoch ms.

    Parsed by hand: Python 3.10's ``fromisoformat`` rejects ``Z``. Digits past milliseconds are
    truncated. A timestamp without a zone is rejected rather than guessed. ValueError if invalid.
    """
    match = _ISO.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"not an ISO-8601 timestamp with a zone: {text!r}")
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=timezone.utc)
    ms = (moment - _EPOCH) // timedelta(milliseconds=1) + int((fraction or "0")[:3].ljust(3, "0"))
    if not zulu:
        ms -= (1 if sign == "+" else -1) * (int(off_h) * 60 + int(off_m)) * 60_000
    return ms


def utc_date(ms: int) -> str:
    """The UTC date (YYYY-MM-DD) of an epoch-ms instant."""
    return f"{_EPOCH + timedelta(milliseconds=ms):%Y-%m-%d}"


def safe_path_part(value: object, pattern: re.Pattern[str]) -> str | None:
    """``value`` if it is a string the allow-list ``pattern`` fully matches, else None.

    Use ``VOICE_CONNECTOR_ID`` or ``RECORD_ID`` (Connect instance id, ContactId, TransactionId).
    A record whose IDs fail becomes a Failure (``unsafe_id``), never a path.
    """
    return value if isinstance(value, str) and pattern.fullmatch(value) else None


class _Reject(Exception):
    """Internal: a field makes the record unusable. Public functions turn it into a Failure."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def _failure(reject: _Reject, *, source: str, source_key: str, offset: int,
             call_id: object = None, partition_id: object = None,
             partition_pattern: re.Pattern[str] = RECORD_ID) -> Failure:
    return Failure(stage=STAGE, reason=reject.reason, detail=reject.detail, source=source,
                   call_id=safe_path_part(call_id, RECORD_ID),
                   partition_id=safe_path_part(partition_id, partition_pattern),
                   source_key=source_key, source_offset=offset)


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _text(value: object, label: str, *, required: bool = False) -> str | None:
    if value is None or value == "":
        if required:
            raise _Reject("missing_field", f"{label} is missing")
        return None
    if not isinstance(value, str):
        raise _Reject("bad_field", f"{label} is not a string: {_shown(value)}")
    return value


def _safe_id(value: object, label: str, pattern: re.Pattern[str]) -> str:
    text = _text(value, label, required=True)
    if safe_path_part(text, pattern) is None:
        raise _Reject("unsafe_id", f"{label} {_shown(text)} is not allowed in a path")
    return text


def _stream_arn(value: object, label: str) -> str | None:
    arn = _text(value, label)
    if arn is not None and not _KVS_STREAM_ARN.fullmatch(arn):
        raise _Reject("bad_field", f"{label} is not a Kinesis Video stream ARN: {_shown(arn)}")
    return arn


def _fragment(value: object, label: str) -> str | None:
    number = _text(value, label)
    if number is not None and not _FRAGMENT_NUMBER.fullmatch(number):
        raise _Reject("bad_field", f"{label} is not a fragment number: {_shown(number)}")
    return number


def _in_range(ms: int, label: str) -> int:
    if not 0 <= ms <= _MAX_MS:
        raise _Reject("bad_timestamp", f"{label} is out of range: {ms} ms")
    return ms


def _iso_ms(value: object, label: str) -> int | None:
    """An ISO timestamp (CTR, Chime event) or None when absent."""
    if value is None:
        return None
    try:
        return _in_range(iso_to_ms(value), label)
    except ValueError as exc:
        raise _Reject("bad_timestamp", f"{label}: {exc}") from None


def _epoch_ms_or_iso(value: object, label: str) -> int | None:
    """A contact-attribute timestamp: epoch-ms digits (what flows copy from the media-stream
    attributes) or ISO; None when absent."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 16:
        return _in_range(int(value), label)
    return _iso_ms(_text(value, label), label)


def _epoch_seconds_ms(value: object, label: str) -> int:
    """An SDR epoch-seconds integer -> ms."""
    if value is None:
        raise _Reject("missing_field", f"{label} is missing")
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Reject("bad_timestamp", f"{label} is not an integer: {_shown(value)}")
    return _in_range(value * 1000, label)


def _ordered(start_ms: int, end_ms: int, label: str) -> None:
    if end_ms < start_ms:
        raise _Reject("bad_timestamp", f"{label} ends before it starts ({end_ms} < {start_ms})")


# --------------------------------------------------------------------------- Amazon Connect

@dataclass(frozen=True)
class ConnectAttributeKeys:
    """Names of user-defined contact attributes that carry the media-stream values.

    Fallback for CTRs without a KVS ``Recordings[]`` entry: flows can copy
    ``$.MediaStreams.Customer.Audio.*`` into attributes with *Set contact attributes*; the names
    are the site's choice. Timestamps there are epoch-ms strings (or ISO).
    """
    stream_arn: str = "customerAudioStreamArn"
    start_fragment: str = "customerAudioStartFragmentNumber"
    stop_fragment: str = "customerAudioStopFragmentNumber"
    start_timestamp: str = "customerAudioStartTimestamp"
    stop_timestamp: str = "customerAudioStopTimestamp"


class _PendingSpan(NamedTuple):
    """A KVS location whose times may still need the contact's window."""
    stream_arn: str
    start_ms: int | None
    end_ms: int | None
    start_fragment: str | None
    stop_fragment: str | None


def connect_calls(ctr: dict, *, source_key: str, offset: int = 0,
                  attribute_keys: ConnectAttributeKeys = ConnectAttributeKeys()) -> list[CallSpec] | Failure:
    """One CTR -> ``[CallSpec]``, ``[]`` for a non-voice contact (a chat or task is not a call to
    fetch: skipped, not failed), or a Failure.

    Streams: one span per ``Recordings[]`` entry with ``StorageType`` KINESIS_VIDEO_STREAM
    (``MediaStreamType`` is not checked: audio entries say VIDEO in the wild); the legacy
    ``Recording`` object only repeats the first entry and is ignored. Without such an entry the
    stream comes from ``attribute_keys``; without either: ``no_kvs_recording``. A span's missing
    start/stop time falls back to the contact's ConnectedToSystemTimestamp (else
    InitiationTimestamp) / DisconnectTimestamp. CTR times have second precision, so the fetch
    stage should pad the window; the ``ContactId`` fragment tag cuts the audio exactly.
    """
    try:
        return _connect_calls(ctr, attribute_keys, source_key, offset)
    except _Reject as reject:
        arn = ctr.get("InstanceARN")
        instance = _CONNECT_INSTANCE_ARN.fullmatch(arn) if isinstance(arn, str) else None
        return _failure(reject, source=CONNECT, source_key=source_key, offset=offset,
                        call_id=ctr.get("ContactId"), partition_id=instance and instance.group(1))


def _connect_calls(ctr: dict, keys: ConnectAttributeKeys, source_key: str, offset: int) -> list[CallSpec]:
    contact_id = _safe_id(ctr.get("ContactId"), "ContactId", RECORD_ID)
    if _text(ctr.get("Channel"), "Channel", required=True) != "VOICE":
        return []
    instance_id = _instance_id(ctr.get("InstanceARN"))
    pending, kvs_source = _recording_spans(ctr.get("Recordings")), "recordings"
    if not pending:
        pending, kvs_source = _attribute_spans(ctr.get("Attributes"), keys), "attributes"
    if not pending:
        raise _Reject("no_kvs_recording", "no Recordings[] entry with StorageType KINESIS_VIDEO_STREAM "
                                          f"and no {keys.stream_arn!r} attribute")
    spans = _complete_spans(pending, ctr)
    start_ms, end_ms = min(s.start_ms for s in spans), max(s.end_ms for s in spans)
    return [CallSpec(source=CONNECT, call_id=contact_id, partition_id=instance_id, date=utc_date(start_ms),
                     start_ms=start_ms, end_ms=end_ms, streams=spans, tag_name="ContactId",
                     source_key=source_key, source_offset=offset,
                     attributes=_connect_attributes(ctr, kvs_source))]


def _instance_id(value: object) -> str:
    arn = _text(value, "InstanceARN", required=True)
    match = _CONNECT_INSTANCE_ARN.fullmatch(arn)
    if match is None:
        raise _Reject("bad_field", f"InstanceARN is not a Connect instance ARN: {_shown(arn)}")
    return _safe_id(match.group(1), "Connect instance id", RECORD_ID)


def _recording_spans(recordings: object) -> list[_PendingSpan]:
    if recordings is None:
        return []
    if not isinstance(recordings, list):
        raise _Reject("bad_field", f"Recordings is not a list: {_shown(recordings)}")
    spans = []
    for i, entry in enumerate(recordings):
        if not isinstance(entry, dict) or entry.get("StorageType") != "KINESIS_VIDEO_STREAM":
            continue
        where = f"Recordings[{i}]"
        arn = _stream_arn(entry.get("Location"), f"{where}.Location")
        if arn is None:
            raise _Reject("missing_field", f"{where}.Location is missing")
        spans.append(_PendingSpan(arn, _iso_ms(entry.get("StartTimestamp"), f"{where}.StartTimestamp"),
                                  _iso_ms(entry.get("StopTimestamp"), f"{where}.StopTimestamp"),
                                  _fragment(entry.get("FragmentStartNumber"), f"{where}.FragmentStartNumber"),
                                  _fragment(entry.get("FragmentStopNumber"), f"{where}.FragmentStopNumber")))
    return spans


def _attribute_spans(attributes: object, keys: ConnectAttributeKeys) -> list[_PendingSpan]:
    if not isinstance(attributes, dict):
        return []
    arn = _stream_arn(attributes.get(keys.stream_arn), f"Attributes.{keys.stream_arn}")
    if arn is None:
        return []
    return [_PendingSpan(
        arn,
        _epoch_ms_or_iso(attributes.get(keys.start_timestamp), f"Attributes.{keys.start_timestamp}"),
        _epoch_ms_or_iso(attributes.get(keys.stop_timestamp), f"Attributes.{keys.stop_timestamp}"),
        _fragment(attributes.get(keys.start_fragment), f"Attributes.{keys.start_fragment}"),
        _fragment(attributes.get(keys.stop_fragment), f"Attributes.{keys.stop_fragment}"))]


def _complete_spans(pending: list[_PendingSpan], ctr: dict) -> tuple[StreamSpan, ...]:
    """Fill missing span times from the contact's window (read only when needed) and check order."""
    window = None
    if any(p.start_ms is None or p.end_ms is None for p in pending):
        window = _contact_window(ctr)
    spans = []
    for p in pending:
        start_ms = window[0] if p.start_ms is None else p.start_ms
        end_ms = window[1] if p.end_ms is None else p.end_ms
        _ordered(start_ms, end_ms, f"the recording on {p.stream_arn}")
        if p.start_fragment and p.stop_fragment and int(p.stop_fragment) < int(p.start_fragment):
            raise _Reject("bad_field", f"stop fragment {p.stop_fragment} is before start fragment {p.start_fragment}")
        spans.append(StreamSpan(p.stream_arn, start_ms, end_ms, start_fragment=p.start_fragment,
                                stop_fragment=p.stop_fragment))
    return tuple(dict.fromkeys(spans))  # the same recording listed twice is one span


def _contact_window(ctr: dict) -> tuple[int, int]:
    start_field = "ConnectedToSystemTimestamp" if ctr.get("ConnectedToSystemTimestamp") else "InitiationTimestamp"
    start_ms = _iso_ms(ctr.get(start_field), start_field)
    end_ms = _iso_ms(ctr.get("DisconnectTimestamp"), "DisconnectTimestamp")
    if start_ms is None or end_ms is None:
        raise _Reject("missing_field", "a recording has no times and the contact has no "
                                       "ConnectedToSystem/Initiation and Disconnect timestamps")
    _ordered(start_ms, end_ms, "the contact")
    return start_ms, end_ms


def _connect_attributes(ctr: dict, kvs_source: str) -> tuple[tuple[str, str], ...]:
    agent = ctr.get("Agent") if isinstance(ctr.get("Agent"), dict) else {}
    queue = ctr.get("Queue") if isinstance(ctr.get("Queue"), dict) else {}
    try:
        last_update = str(iso_to_ms(ctr.get("LastUpdateTimestamp")))
    except ValueError:
        last_update = None
    pairs = (("initiation_method", ctr.get("InitiationMethod")),
             ("disconnect_reason", ctr.get("DisconnectReason")),
             ("agent_username", agent.get("Username")),
             ("queue_name", queue.get("Name")),
             ("initial_contact_id", ctr.get("InitialContactId")),
             ("last_update_ms", last_update),
             ("kvs_source", kvs_source))
    return tuple((name, value) for name, value in pairs if isinstance(value, str) and value)


def dedupe_key(record: Sourced) -> tuple[str, ...]:
    """Group key for CTR copies: the ContactId. A record without one keeps a key of its own (its
    source position) so it still reaches ``connect_calls`` and becomes a Failure there."""
    contact_id = record.record.get("ContactId")
    if isinstance(contact_id, str) and contact_id:
        return ("ContactId", contact_id)
    return ("unkeyed", record.source_key, str(record.offset))


def ctr_version(record: Sourced) -> tuple[int, str, int]:
    """Sort key of a CTR copy: LastUpdateTimestamp (unparseable = oldest), then key and offset so
    ties resolve the same way on every run."""
    try:
        updated_ms = iso_to_ms(record.record.get("LastUpdateTimestamp"))
    except ValueError:
        updated_ms = -1
    return (updated_ms, record.source_key, record.offset)


def latest_ctr(a: Sourced, b: Sourced) -> Sourced:
    """The newer of two copies of one contact's CTR (Firehose delivers at least once, and again
    after updates). A max over a total order: commutative and associative, fit for a combiner."""
    return a if ctr_version(a) >= ctr_version(b) else b


# --------------------------------------------------------------------------- Chime Voice Connector

@dataclass(frozen=True)
class SdrRecord:
    """The parts of a streaming detail record that matter here (IDs already allow-listed)."""
    transaction_id: str
    voice_connector_id: str
    call_id: str | None  # SIP Call-ID: contains @ and :, never used in a path
    start_ms: int
    end_ms: int
    status: str | None
    source_key: str


def parse_sdr(data: bytes, key: str) -> SdrRecord | Failure:
    """One SDR object (exactly one JSON object; gzip and a BOM tolerated) -> SdrRecord or Failure."""
    items = list(split_json_objects(data))
    offset, first = items[0] if items else (0, SplitError("bad_json", "the object is empty"))
    if isinstance(first, SplitError):
        return Failure(stage=STAGE, reason=first.reason, detail=str(first), source=CHIME,
                       source_key=key, source_offset=offset)
    try:
        if len(items) > 1:
            raise _Reject("bad_json", f"an SDR object holds one JSON object, this one {len(items)} parts")
        sdr = SdrRecord(
            transaction_id=_safe_id(first.get("TransactionId"), "TransactionId", RECORD_ID),
            voice_connector_id=_safe_id(first.get("VoiceConnectorId"), "VoiceConnectorId", VOICE_CONNECTOR_ID),
            call_id=_text(first.get("CallId"), "CallId"),
            start_ms=_epoch_seconds_ms(first.get("StartTimeEpochSeconds"), "StartTimeEpochSeconds"),
            end_ms=_epoch_seconds_ms(first.get("EndTimeEpochSeconds"), "EndTimeEpochSeconds"),
            status=_text(first.get("Status"), "Status"),
            source_key=key)
        _ordered(sdr.start_ms, sdr.end_ms, "the SDR")
        return sdr
    except _Reject as reject:
        return _failure(reject, source=CHIME, source_key=key, offset=offset, call_id=first.get("TransactionId"),
                        partition_id=first.get("VoiceConnectorId"), partition_pattern=VOICE_CONNECTOR_ID)


@dataclass(frozen=True)
class StreamingEvent:
    """One "Chime VoiceConnector Streaming Status" event's detail (IDs already allow-listed)."""
    status: str  # STARTED / ENDED / UPDATED / FAILED
    transaction_id: str
    voice_connector_id: str
    call_id: str  # SIP Call-ID, never used in a path
    source_key: str
    offset: int = 0
    stream_arn: str | None = None
    start_fragment: str | None = None
    start_ms: int | None = None
    end_ms: int | None = None
    is_caller: bool | None = None
    direction: str | None = None  # Inbound / Outbound
    from_number: str | None = None
    to_number: str | None = None
    media_label: str | None = None  # SIPREC sdp.mediaLabel
    siprec_metadata: str | None = None  # RFC 7865 XML
    failure_reason: str | None = None


def parse_streaming_event(obj: dict, *, source_key: str, offset: int = 0) -> StreamingEvent | Failure | None:
    """An archived EventBridge envelope (or a bare ``detail``) -> StreamingEvent; None for other
    event types sharing the archive; Failure for a streaming-status event that is unusable.

    Only streamingStatus, transactionId, callId and voiceConnectorId are required (optional fields
    come and go between samples); an optional field that is present must be well-formed.
    ``isCaller`` may be a boolean or a string ("True", "false").
    """
    if "detail-type" in obj:
        if obj["detail-type"] != STREAMING_STATUS_DETAIL_TYPE:
            return None
        detail = obj.get("detail")
    elif "streamingStatus" in obj:
        detail = obj
    else:
        return None
    try:
        if not isinstance(detail, dict):
            raise _Reject("missing_field", "the event has no detail object")
        return _streaming_event(detail, source_key, offset)
    except _Reject as reject:
        detail = detail if isinstance(detail, dict) else {}
        return _failure(reject, source=CHIME, source_key=source_key, offset=offset,
                        call_id=detail.get("transactionId"), partition_id=detail.get("voiceConnectorId"),
                        partition_pattern=VOICE_CONNECTOR_ID)


def _streaming_event(detail: dict, source_key: str, offset: int) -> StreamingEvent:
    sdp = detail.get("sdp") if isinstance(detail.get("sdp"), dict) else {}
    label = sdp.get("mediaLabel")
    return StreamingEvent(
        status=_text(detail.get("streamingStatus"), "streamingStatus", required=True),
        transaction_id=_safe_id(detail.get("transactionId"), "transactionId", RECORD_ID),
        voice_connector_id=_safe_id(detail.get("voiceConnectorId"), "voiceConnectorId", VOICE_CONNECTOR_ID),
        call_id=_text(detail.get("callId"), "callId", required=True),
        source_key=source_key,
        offset=offset,
        stream_arn=_stream_arn(detail.get("streamArn"), "streamArn"),
        start_fragment=_fragment(detail.get("startFragmentNumber"), "startFragmentNumber"),
        start_ms=_iso_ms(detail.get("startTime"), "startTime"),
        end_ms=_iso_ms(detail.get("endTime"), "endTime"),
        is_caller=_lenient_bool(detail.get("isCaller"), "isCaller"),
        direction=_text(detail.get("direction"), "direction"),
        from_number=_text(detail.get("fromNumber"), "fromNumber"),
        to_number=_text(detail.get("toNumber"), "toNumber"),
        media_label=str(label) if isinstance(label, (str, int)) and not isinstance(label, bool) else None,
        siprec_metadata=_text(detail.get("siprecMetadata"), "siprecMetadata"),
        failure_reason=_text(detail.get("failureReason"), "failureReason"))


def _lenient_bool(value: object, label: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise _Reject("bad_field", f"{label} is not a boolean: {_shown(value)}")


def event_key(event: StreamingEvent) -> tuple[str, str | None, str]:
    """Events are delivered (and archived) more than once; one per (transaction, stream, status)."""
    return (event.transaction_id, event.stream_arn, event.status)


@dataclass(frozen=True)
class _Leg:
    stream_arn: str
    start_fragment: str | None
    start_ms: int | None
    end_ms: int | None
    is_caller: bool | None
    media_label: str | None


def chime_call(sdr: SdrRecord | None, events: Iterable[StreamingEvent], *,
               customer_leg: str = "auto") -> CallSpec | Failure:
    """One Chime transaction (its SDR, its streaming events, or both) -> CallSpec or Failure.

    Legs: one per distinct ``streamArn`` among STARTED/ENDED events (duplicates dropped by
    ``event_key``), each with its start fragment, startTime/endTime and isCaller. A leg without
    times takes the SDR's (for the end also the other legs' latest end). No STARTED/ENDED event
    at all: one span with ``stream_arn=None`` and ``discover_prefix="ChimeVoiceConnector-<vcId>-"``
    over the SDR's window; the fetch stage lists those streams and keeps fragments whose
    ``TransactionId`` tag matches. Events alone suffice: the SDR is a billing record.

    Channels: channel 0 = customer, channel 1 = agent; a party whose leg reconnects on another
    stream keeps its channel (streams of one role, or else of one isCaller, share it).
    ``customer_leg="auto"`` reads ``direction``: Inbound -> the caller leg is the customer,
    Outbound (PBX agent dials out) -> the callee leg is; "caller" / "callee" force one. SIPREC
    legs (``sdp.mediaLabel``): isCaller is undefined there, so the customer is the leg whose
    sending participant in ``siprecMetadata`` has the caller's (resp. callee's) phone number;
    labels go to attributes ``channel<N>_media_label``. When the role cannot be told (no
    direction, no isCaller, no matching participant) roles stay None and legs are ordered by
    media label, then start time.
    """
    if customer_leg not in CUSTOMER_LEG_CHOICES:
        raise ValueError(f"customer_leg must be one of {CUSTOMER_LEG_CHOICES}, not {customer_leg!r}")
    unique: dict[tuple, StreamingEvent] = {}
    for event in sorted(events, key=lambda e: (e.source_key, e.offset)):
        unique.setdefault(event_key(event), event)
    events = list(unique.values())
    if sdr is None and not events:
        raise ValueError("chime_call needs an SDR or at least one streaming event")
    head = sdr or events[0]
    source_key, offset = (sdr.source_key, 0) if sdr else (events[0].source_key, events[0].offset)
    try:
        return _chime_call(sdr, events, customer_leg, source_key, offset)
    except _Reject as reject:
        return _failure(reject, source=CHIME, source_key=source_key, offset=offset, call_id=head.transaction_id,
                        partition_id=head.voice_connector_id, partition_pattern=VOICE_CONNECTOR_ID)


def _chime_call(sdr: SdrRecord | None, events: list[StreamingEvent], customer_leg: str,
                source_key: str, offset: int) -> CallSpec:
    records = ([sdr] if sdr else []) + events
    transaction_id, vc_id = records[0].transaction_id, records[0].voice_connector_id
    if {(r.transaction_id, r.voice_connector_id) for r in records} != {(transaction_id, vc_id)}:
        raise _Reject("inconsistent_records", f"records of transaction {transaction_id} disagree on "
                                              "TransactionId/VoiceConnectorId")
    direction = next((e.direction for e in events if e.direction), None)
    failure_reason = next((e.failure_reason or "FAILED" for e in events if e.status == "FAILED"), None)
    legs = _legs(events)
    if legs:
        spans, kvs_source = _leg_spans(legs, sdr, events, direction, customer_leg), "events"
    elif sdr is not None:
        spans = (StreamSpan(None, sdr.start_ms, sdr.end_ms, discover_prefix=f"ChimeVoiceConnector-{vc_id}-"),)
        kvs_source = "discovery"
    elif failure_reason is not None:
        raise _Reject("streaming_failed", f"streaming failed: {failure_reason}")
    else:
        raise _Reject("missing_field", "no STARTED/ENDED event with a streamArn and no SDR")
    start_ms, end_ms = min(s.start_ms for s in spans), max(s.end_ms for s in spans)
    call_id = (sdr and sdr.call_id) or next((e.call_id for e in events), None)
    pairs = [("sip_call_id", call_id), ("direction", direction), ("sdr_status", sdr and sdr.status),
             ("streaming_failure", failure_reason), ("kvs_source", kvs_source)]
    labels = {leg.stream_arn: leg.media_label for leg in legs}
    pairs += [(f"channel{span.channel}_media_label", labels[span.stream_arn]) for span in spans if legs]
    return CallSpec(source=CHIME, call_id=transaction_id, partition_id=vc_id, date=utc_date(start_ms),
                    start_ms=start_ms, end_ms=end_ms, streams=spans, tag_name="TransactionId",
                    source_key=source_key, source_offset=offset,
                    attributes=tuple((name, value) for name, value in pairs if value))


def _legs(events: list[StreamingEvent]) -> list[_Leg]:
    by_stream: dict[str, list[StreamingEvent]] = {}
    for event in events:
        if event.status in ("STARTED", "ENDED") and event.stream_arn:
            by_stream.setdefault(event.stream_arn, []).append(event)

    def first(stream_events: list[StreamingEvent], name: str):
        return next((getattr(e, name) for e in stream_events if getattr(e, name) is not None), None)

    return [_Leg(arn, first(evs, "start_fragment"), first(evs, "start_ms"), first(evs, "end_ms"),
                 first(evs, "is_caller"), first(evs, "media_label")) for arn, evs in by_stream.items()]


_ROLE_ORDER = {"customer": 0, "agent": 1, None: 2}


def _leg_spans(legs: list[_Leg], sdr: SdrRecord | None, events: list[StreamingEvent],
               direction: str | None, customer_leg: str) -> tuple[StreamSpan, ...]:
    latest_end = max((leg.end_ms for leg in legs if leg.end_ms is not None), default=None)
    roles = _roles(legs, events, direction, customer_leg)
    timed, leg_channel = [], {}
    for leg in legs:
        start_ms = leg.start_ms if leg.start_ms is not None else (sdr.start_ms if sdr else None)
        end_ms = leg.end_ms if leg.end_ms is not None else (sdr.end_ms if sdr else latest_end)
        if start_ms is None or end_ms is None:
            raise _Reject("missing_field", f"the leg on {leg.stream_arn} has no start or end time "
                                           "(no startTime/endTime, no SDR)")
        _ordered(start_ms, end_ms, f"the leg on {leg.stream_arn}")
        timed.append((leg, start_ms, end_ms))
    timed.sort(key=lambda t: (_ROLE_ORDER[roles.get(t[0].stream_arn)], _label_order(t[0].media_label),
                              t[1], t[0].stream_arn))
    # A leg that reconnects comes back on another stream: streams of the same party (same role, or
    # else the same isCaller) share one channel, so the party's audio stays on one timeline.
    channels: dict[object, int] = {}
    for leg, _, _ in timed:
        party = roles.get(leg.stream_arn) or (
            ("caller" if leg.is_caller else "callee") if leg.is_caller is not None else leg.stream_arn)
        channels.setdefault(party, len(channels))
        leg_channel[leg.stream_arn] = channels[party]
    return tuple(StreamSpan(leg.stream_arn, start_ms, end_ms, channel=leg_channel[leg.stream_arn],
                            role=roles.get(leg.stream_arn), start_fragment=leg.start_fragment,
                            is_caller=leg.is_caller)
                 for leg, start_ms, end_ms in timed)


def _label_order(label: str | None) -> tuple[int, int, str]:
    if label is None:
        return (2, 0, "")
    numeric = label.isascii() and label.isdigit() and len(label) <= 18
    return (0, int(label), "") if numeric else (1, 0, label)


def _roles(legs: list[_Leg], events: list[StreamingEvent], direction: str | None,
           customer_leg: str) -> dict[str, str]:
    """stream ARN -> "customer" / "agent"; legs left out have no known role."""
    side = customer_leg if customer_leg != "auto" else {"Inbound": "caller", "Outbound": "callee"}.get(direction)
    if side is None:
        return {}
    if any(leg.media_label is not None for leg in legs):
        return _siprec_roles(legs, events, side)
    return {leg.stream_arn: "customer" if leg.is_caller == (side == "caller") else "agent"
            for leg in legs if leg.is_caller is not None}


def _siprec_roles(legs: list[_Leg], events: list[StreamingEvent], side: str) -> dict[str, str]:
    field = "from_number" if side == "caller" else "to_number"
    number = next((getattr(e, field) for e in events if getattr(e, field)), None)
    metadata = next((e.siprec_metadata for e in events if e.siprec_metadata), None)
    if number is None or metadata is None or not _digits(number):
        return {}
    senders = siprec_senders(metadata)
    customers = [leg for leg in legs if leg.media_label in senders
                 and _digits(_aor_user(senders[leg.media_label])) == _digits(number)]
    if len(customers) != 1:
        return {}
    return {leg.stream_arn: "customer" if leg is customers[0] else "agent" for leg in legs}


def siprec_senders(metadata: str) -> dict[str, str]:
    """SIPREC metadata (RFC 7865 XML) -> {stream label: AoR of the participant who sends it}.

    Joins ``<stream stream_id><label>`` -> ``<participantstreamassoc participant_id><send>`` ->
    ``<participant participant_id><nameID aor>``. Unparseable XML gives {}.
    """
    try:
        root = ElementTree.fromstring(metadata)
    except (ElementTree.ParseError, ValueError):
        return {}
    labels, sender_of, aors = {}, {}, {}
    for element in root.iter():
        tag = element.tag.rpartition("}")[2]
        children = {child.tag.rpartition("}")[2]: child for child in element}
        if tag == "stream" and "label" in children:
            labels[element.get("stream_id")] = (children["label"].text or "").strip()
        elif tag == "participant" and "nameID" in children:
            aors[element.get("participant_id")] = children["nameID"].get("aor")
        elif tag == "participantstreamassoc":
            for child in element:
                if child.tag.rpartition("}")[2] == "send":
                    sender_of[(child.text or "").strip()] = element.get("participant_id")
    return {label: aors[sender_of[stream_id]] for stream_id, label in labels.items()
            if label and aors.get(sender_of.get(stream_id))}


def _aor_user(aor: str) -> str:
    """``sip:+14255550133@host;x`` -> ``+14255550133``."""
    match = re.match(r"(?:sips?|tel):([^@;]*)", aor)
    return match.group(1) if match else aor


def _digits(text: str) -> str:
    return re.sub(r"[^0-9]", "", text)
