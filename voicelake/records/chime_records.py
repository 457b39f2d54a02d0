"""Chime Voice Connector records -> ``CallSpec``, one per transaction.

* **Chime SDRs**, one JSON object per S3 object under
  ``Amazon-Chime-Voice-Connector-SDRs/json/<vcId>/<yyyy>/<mm>/<dd>/<HH.MM.SS.mmm>_<TransactionId>``.
  Billing records: no stream ARN, so they only locate audio by stream discovery.
* **Chime streaming-status events** ("Chime VoiceConnector Streaming Status" EventBridge envelopes),
  archived through Firehose like CTRs. They are the only records with a stream ARN, start fragment
  and leg times.

``chime_call`` joins a transaction's SDR and events: one ``StreamSpan`` per leg (stream); channel 0
is the customer, channel 1 the agent. Facts and sources: ``../shared/domain/records.md``.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import NamedTuple
from xml.etree import ElementTree

from voicelake.model import CHIME, CallSpec, Failure, StreamSpan
from voicelake.records.firehose import DEFAULT_MAX_OBJECT_MB, MB, SplitError, split_json_objects
from voicelake.records.record_fields import (
    RECORD_ID,
    STAGE,
    VOICE_CONNECTOR_ID,
    Rejected,
    epoch_seconds_field,
    failure_from,
    fragment_field,
    id_field,
    iso_field,
    ordered,
    safe_path_part,
    shown,
    stream_arn_field,
    text_field,
    utc_date,
)

SDR_ROOT = "Amazon-Chime-Voice-Connector-SDRs/json/"
STREAMING_STATUS_DETAIL_TYPE = "Chime VoiceConnector Streaming Status"
CUSTOMER_LEG_CHOICES = ("auto", "caller", "callee")


# --------------------------------------------------------------------------- SDR keys

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


def voice_connector_of_key(key: str) -> str | None:
    """The Voice Connector an SDR key names, if it passes the allow-list: a failed SDR still
    belongs to its connector's partition."""
    sdr_key = parse_sdr_key(key)
    return safe_path_part(sdr_key.vc_id, VOICE_CONNECTOR_ID) if sdr_key else None


# --------------------------------------------------------------------------- records

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


def parse_sdr(data: bytes, key: str, *, max_bytes: int = DEFAULT_MAX_OBJECT_MB * MB) -> SdrRecord | Failure:
    """One SDR object (exactly one JSON object; gzip and a BOM tolerated) -> SdrRecord or Failure.

    A failure is filed under the record's VoiceConnectorId, else the one its key names.
    """
    items = list(split_json_objects(data, max_bytes=max_bytes))
    offset, first = items[0]
    if isinstance(first, SplitError):
        return Failure(stage=STAGE, reason=first.reason, detail=str(first), source=CHIME,
                       partition_id=voice_connector_of_key(key), source_key=key, source_offset=offset)
    try:
        if len(items) > 1:
            raise Rejected("bad_json", f"an SDR object holds one JSON object, this one {len(items)} parts")
        sdr = SdrRecord(
            transaction_id=id_field(first.get("TransactionId"), "TransactionId", RECORD_ID),
            voice_connector_id=id_field(first.get("VoiceConnectorId"), "VoiceConnectorId", VOICE_CONNECTOR_ID),
            call_id=text_field(first.get("CallId"), "CallId"),
            start_ms=epoch_seconds_field(first.get("StartTimeEpochSeconds"), "StartTimeEpochSeconds"),
            end_ms=epoch_seconds_field(first.get("EndTimeEpochSeconds"), "EndTimeEpochSeconds"),
            status=text_field(first.get("Status"), "Status"),
            source_key=key)
        ordered(sdr.start_ms, sdr.end_ms, "the SDR")
        return sdr
    except Rejected as reject:
        failure = failure_from(reject, source=CHIME, source_key=key, offset=offset,
                               call_id=first.get("TransactionId"), partition_id=first.get("VoiceConnectorId"),
                               partition_pattern=VOICE_CONNECTOR_ID)
        return failure if failure.partition_id else replace(failure, partition_id=voice_connector_of_key(key))


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
            raise Rejected("missing_field", "the event has no detail object")
        return _streaming_event(detail, source_key, offset)
    except Rejected as reject:
        detail = detail if isinstance(detail, dict) else {}
        return failure_from(reject, source=CHIME, source_key=source_key, offset=offset,
                        call_id=detail.get("transactionId"), partition_id=detail.get("voiceConnectorId"),
                        partition_pattern=VOICE_CONNECTOR_ID)


def _streaming_event(detail: dict, source_key: str, offset: int) -> StreamingEvent:
    sdp = detail.get("sdp") if isinstance(detail.get("sdp"), dict) else {}
    label = sdp.get("mediaLabel")
    return StreamingEvent(
        status=text_field(detail.get("streamingStatus"), "streamingStatus", required=True),
        transaction_id=id_field(detail.get("transactionId"), "transactionId", RECORD_ID),
        voice_connector_id=id_field(detail.get("voiceConnectorId"), "voiceConnectorId", VOICE_CONNECTOR_ID),
        call_id=text_field(detail.get("callId"), "callId", required=True),
        source_key=source_key,
        offset=offset,
        stream_arn=stream_arn_field(detail.get("streamArn"), "streamArn"),
        start_fragment=fragment_field(detail.get("startFragmentNumber"), "startFragmentNumber"),
        start_ms=iso_field(detail.get("startTime"), "startTime"),
        end_ms=iso_field(detail.get("endTime"), "endTime"),
        is_caller=_lenient_bool(detail.get("isCaller"), "isCaller"),
        direction=text_field(detail.get("direction"), "direction"),
        from_number=text_field(detail.get("fromNumber"), "fromNumber"),
        to_number=text_field(detail.get("toNumber"), "toNumber"),
        media_label=str(label) if isinstance(label, (str, int)) and not isinstance(label, bool) else None,
        siprec_metadata=text_field(detail.get("siprecMetadata"), "siprecMetadata"),
        failure_reason=text_field(detail.get("failureReason"), "failureReason"))


def _lenient_bool(value: object, label: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise Rejected("bad_field", f"{label} is not a boolean: {shown(value)}")


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
    except Rejected as reject:
        return failure_from(reject, source=CHIME, source_key=source_key, offset=offset, call_id=head.transaction_id,
                        partition_id=head.voice_connector_id, partition_pattern=VOICE_CONNECTOR_ID)


def _chime_call(sdr: SdrRecord | None, events: list[StreamingEvent], customer_leg: str,
                source_key: str, offset: int) -> CallSpec:
    records = ([sdr] if sdr else []) + events
    transaction_id, vc_id = records[0].transaction_id, records[0].voice_connector_id
    if {(r.transaction_id, r.voice_connector_id) for r in records} != {(transaction_id, vc_id)}:
        raise Rejected("inconsistent_records", f"records of transaction {transaction_id} disagree on "
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
        raise Rejected("streaming_failed", f"streaming failed: {failure_reason}")
    else:
        raise Rejected("missing_field", "no STARTED/ENDED event with a streamArn and no SDR")
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
            raise Rejected("missing_field", f"the leg on {leg.stream_arn} has no start or end time "
                                           "(no startTime/endTime, no SDR)")
        ordered(start_ms, end_ms, f"the leg on {leg.stream_arn}")
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
