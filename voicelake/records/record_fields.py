"""What every call-record parser shares: the failure reasons, the allow-lists for IDs that become
path parts, and field readers that turn a bad value into a rejection with a reason.

Conventions (facts and sources: ``../shared/domain/records.md``):

* Times are int epoch milliseconds, UTC. A call belongs to the UTC date its audio window starts
  (``CallSpec.date == utc_date(CallSpec.start_ms)``).
* Nothing raises on bad data. Every unusable record becomes ``Failure(stage="records", reason=...)``
  with one of ``REASONS``; IDs that end up in paths pass an allow-list first (``safe_path_part``).
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from voicelake.model import Failure

STAGE = "records"

REASONS = {
    "bad_gzip": "the object starts like gzip but does not inflate (corrupt, truncated or trailing bytes)",
    "too_large": "the object, or what it inflates to, is larger than --max_record_object_mb",
    "empty_object": "the object holds no record: empty, or only whitespace or NUL padding",
    "bad_utf8": "a record's bytes are not UTF-8",
    "bad_json": "not valid JSON: a broken record and the bytes up to the next usable record",
    "not_an_object": "a top-level JSON value that is not an object",
    "missing_field": "a required field is absent or null",
    "bad_field": "a field has the wrong type or shape (stream ARN, fragment number, isCaller, ...)",
    "bad_timestamp": "a timestamp does not parse, is out of range, or ends before it starts",
    "unsafe_id": "an ID that would go into a path fails its allow-list",
    "no_kvs_recording": "a voice CTR with no KVS recording and no stream-ARN attribute",
    "streaming_failed": "a Chime transaction whose only streaming events are FAILED, and no SDR",
    "inconsistent_records": "records of one Chime transaction name different Voice Connectors",
    "date_out_of_range": "the call's date is outside the days any run reads this record for",
}

# Allow-lists for IDs that become path parts. fullmatch, so no "$ matches before a newline" hole;
# RECORD_ID must start alphanumeric so "." and ".." never pass.
VOICE_CONNECTOR_ID = re.compile(r"[a-z0-9]{1,64}", re.ASCII)
RECORD_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", re.ASCII)

_KVS_STREAM_ARN = re.compile(
    r"arn:aws[a-z-]*:kinesisvideo:[a-z0-9-]+:[0-9]{12}:stream/[A-Za-z0-9_.-]{1,256}/[0-9]{1,20}", re.ASCII)
_FRAGMENT_NUMBER = re.compile(r"[0-9]{1,64}", re.ASCII)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last instant datetime can show


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


class Rejected(Exception):
    """A field makes the record unusable. The parsers' public functions turn it into a Failure
    (``failure_from``); it never leaves them."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def failure_from(reject: Rejected, *, source: str, source_key: str, offset: int,
             call_id: object = None, partition_id: object = None,
             partition_pattern: re.Pattern[str] = RECORD_ID) -> Failure:
    return Failure(stage=STAGE, reason=reject.reason, detail=reject.detail, source=source,
                   call_id=safe_path_part(call_id, RECORD_ID),
                   partition_id=safe_path_part(partition_id, partition_pattern),
                   source_key=source_key, source_offset=offset)


def shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def text_field(value: object, label: str, *, required: bool = False) -> str | None:
    if value is None or value == "":
        if required:
            raise Rejected("missing_field", f"{label} is missing")
        return None
    if not isinstance(value, str):
        raise Rejected("bad_field", f"{label} is not a string: {shown(value)}")
    return value


def id_field(value: object, label: str, pattern: re.Pattern[str]) -> str:
    text = text_field(value, label, required=True)
    if safe_path_part(text, pattern) is None:
        raise Rejected("unsafe_id", f"{label} {shown(text)} is not allowed in a path")
    return text


def stream_arn_field(value: object, label: str) -> str | None:
    arn = text_field(value, label)
    if arn is not None and not _KVS_STREAM_ARN.fullmatch(arn):
        raise Rejected("bad_field", f"{label} is not a Kinesis Video stream ARN: {shown(arn)}")
    return arn


def fragment_field(value: object, label: str) -> str | None:
    number = text_field(value, label)
    if number is not None and not _FRAGMENT_NUMBER.fullmatch(number):
        raise Rejected("bad_field", f"{label} is not a fragment number: {shown(number)}")
    return number


def in_range(ms: int, label: str) -> int:
    if not 0 <= ms <= _MAX_MS:
        raise Rejected("bad_timestamp", f"{label} is out of range: {ms} ms")
    return ms


def iso_field(value: object, label: str) -> int | None:
    """An ISO timestamp (CTR, Chime event) or None when absent."""
    if value is None:
        return None
    try:
        return in_range(iso_to_ms(value), label)
    except ValueError as exc:
        raise Rejected("bad_timestamp", f"{label}: {exc}") from None


def epoch_ms_or_iso_field(value: object, label: str) -> int | None:
    """A contact-attribute timestamp: epoch-ms digits (what flows copy from the media-stream
    attributes) or ISO; None when absent."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 16:
        return in_range(int(value), label)
    return iso_field(text_field(value, label), label)


def epoch_seconds_field(value: object, label: str) -> int:
    """An SDR epoch-seconds integer -> ms."""
    if value is None:
        raise Rejected("missing_field", f"{label} is missing")
    if isinstance(value, bool) or not isinstance(value, int):
        raise Rejected("bad_timestamp", f"{label} is not an integer: {shown(value)}")
    return in_range(value * 1000, label)


def ordered(start_ms: int, end_ms: int, label: str) -> None:
    if end_ms < start_ms:
        raise Rejected("bad_timestamp", f"{label} ends before it starts ({end_ms} < {start_ms})")
