"""Amazon Connect contact trace records (CTRs) -> ``CallSpec``, one per voice contact.

CTRs arrive through Firehose (``voicelake.records.firehose``), at least once and again after updates, so
copies of one contact are reduced to the latest (``dedupe_key``, ``latest_ctr``). The KVS location
is in ``Recordings[]`` entries with ``StorageType`` KINESIS_VIDEO_STREAM (``../shared/domain/records.md``).
One ``StreamSpan`` per KVS recording, ``channel`` None: the tracks decide the channels.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

from voicelake.model import CONNECT, CallSpec, ContactTimes, Failure, StreamSpan
from voicelake.records.firehose import Sourced
from voicelake.records.record_fields import (
    RECORD_ID,
    Rejected,
    epoch_ms_or_iso_field,
    failure_from,
    fragment_field,
    id_field,
    iso_field,
    iso_to_ms,
    ordered,
    shown,
    stream_arn_field,
    text_field,
    utc_date,
)

_CONNECT_INSTANCE_ARN = re.compile(r"arn:aws[a-z-]*:connect:[a-z0-9-]+:[0-9]{12}:instance/(.+)", re.ASCII)


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
    except Rejected as reject:
        arn = ctr.get("InstanceARN")
        instance = _CONNECT_INSTANCE_ARN.fullmatch(arn) if isinstance(arn, str) else None
        return failure_from(reject, source=CONNECT, source_key=source_key, offset=offset,
                        call_id=ctr.get("ContactId"), partition_id=instance and instance.group(1))


def _connect_calls(ctr: dict, keys: ConnectAttributeKeys, source_key: str, offset: int) -> list[CallSpec]:
    contact_id = id_field(ctr.get("ContactId"), "ContactId", RECORD_ID)
    if text_field(ctr.get("Channel"), "Channel", required=True) != "VOICE":
        return []
    instance_id = _instance_id(ctr.get("InstanceARN"))
    pending, kvs_source = _recording_spans(ctr.get("Recordings")), "recordings"
    if not pending:
        pending, kvs_source = _attribute_spans(ctr.get("Attributes"), keys), "attributes"
    if not pending:
        raise Rejected("no_kvs_recording", "no Recordings[] entry with StorageType KINESIS_VIDEO_STREAM "
                                          f"and no {keys.stream_arn!r} attribute")
    spans = _complete_spans(pending, ctr)
    start_ms, end_ms = min(s.start_ms for s in spans), max(s.end_ms for s in spans)
    return [CallSpec(source=CONNECT, call_id=contact_id, partition_id=instance_id, date=utc_date(start_ms),
                     start_ms=start_ms, end_ms=end_ms, streams=spans, tag_name="ContactId",
                     source_key=source_key, source_offset=offset,
                     attributes=_connect_attributes(ctr, kvs_source),
                     contact=contact_times(ctr, pending[0].start_ms if kvs_source == "recordings" else None))]


def _instance_id(value: object) -> str:
    arn = text_field(value, "InstanceARN", required=True)
    match = _CONNECT_INSTANCE_ARN.fullmatch(arn)
    if match is None:
        raise Rejected("bad_field", f"InstanceARN is not a Connect instance ARN: {shown(arn)}")
    return id_field(match.group(1), "Connect instance id", RECORD_ID)


def _recording_spans(recordings: object) -> list[_PendingSpan]:
    if recordings is None:
        return []
    if not isinstance(recordings, list):
        raise Rejected("bad_field", f"Recordings is not a list: {shown(recordings)}")
    spans = []
    for i, entry in enumerate(recordings):
        if not isinstance(entry, dict) or entry.get("StorageType") != "KINESIS_VIDEO_STREAM":
            continue
        where = f"Recordings[{i}]"
        arn = stream_arn_field(entry.get("Location"), f"{where}.Location")
        if arn is None:
            raise Rejected("missing_field", f"{where}.Location is missing")
        spans.append(_PendingSpan(arn, iso_field(entry.get("StartTimestamp"), f"{where}.StartTimestamp"),
                                  iso_field(entry.get("StopTimestamp"), f"{where}.StopTimestamp"),
                                  fragment_field(entry.get("FragmentStartNumber"), f"{where}.FragmentStartNumber"),
                                  fragment_field(entry.get("FragmentStopNumber"), f"{where}.FragmentStopNumber")))
    return spans


def _attribute_spans(attributes: object, keys: ConnectAttributeKeys) -> list[_PendingSpan]:
    if not isinstance(attributes, dict):
        return []
    arn = stream_arn_field(attributes.get(keys.stream_arn), f"Attributes.{keys.stream_arn}")
    if arn is None:
        return []
    return [_PendingSpan(
        arn,
        epoch_ms_or_iso_field(attributes.get(keys.start_timestamp), f"Attributes.{keys.start_timestamp}"),
        epoch_ms_or_iso_field(attributes.get(keys.stop_timestamp), f"Attributes.{keys.stop_timestamp}"),
        fragment_field(attributes.get(keys.start_fragment), f"Attributes.{keys.start_fragment}"),
        fragment_field(attributes.get(keys.stop_fragment), f"Attributes.{keys.stop_fragment}"))]


def _complete_spans(pending: list[_PendingSpan], ctr: dict) -> tuple[StreamSpan, ...]:
    """Fill missing span times from the contact's window (read only when needed) and check order."""
    window = None
    if any(p.start_ms is None or p.end_ms is None for p in pending):
        window = _contact_window(ctr)
    spans = []
    for p in pending:
        start_ms = window[0] if p.start_ms is None else p.start_ms
        end_ms = window[1] if p.end_ms is None else p.end_ms
        ordered(start_ms, end_ms, f"the recording on {p.stream_arn}")
        if p.start_fragment and p.stop_fragment and int(p.stop_fragment) < int(p.start_fragment):
            raise Rejected("bad_field", f"stop fragment {p.stop_fragment} is before start fragment {p.start_fragment}")
        spans.append(StreamSpan(p.stream_arn, start_ms, end_ms, start_fragment=p.start_fragment,
                                stop_fragment=p.stop_fragment))
    return tuple(dict.fromkeys(spans))  # the same recording listed twice is one span


def _contact_window(ctr: dict) -> tuple[int, int]:
    start_field = "ConnectedToSystemTimestamp" if ctr.get("ConnectedToSystemTimestamp") else "InitiationTimestamp"
    start_ms = iso_field(ctr.get(start_field), start_field)
    end_ms = iso_field(ctr.get("DisconnectTimestamp"), "DisconnectTimestamp")
    if start_ms is None or end_ms is None:
        raise Rejected("missing_field", "a recording has no times and the contact has no "
                                       "ConnectedToSystem/Initiation and Disconnect timestamps")
    ordered(start_ms, end_ms, "the contact")
    return start_ms, end_ms


def _part(ctr: dict, name: str) -> dict:
    """``Agent`` or ``Queue``: null on a contact that never reached one."""
    value = ctr.get(name)
    return value if isinstance(value, dict) else {}


def _mark(value: object) -> int | None:
    """A phase timestamp, or None when absent or unreadable: a bad phase mark costs the contact its
    phases (it falls back to one phase, ``call``), never its audio."""
    try:
        return iso_field(value, "phase mark")
    except Rejected:
        return None


def _whole(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def contact_times(ctr: dict, recording_start_ms: int | None) -> ContactTimes:
    """The CTR's phase marks (``ContactTimes``); ``recording_start_ms`` is the KVS recording's
    StartTimestamp when the CTR lists one (attribute-sourced streams carry no Connect-clock time)."""
    agent, queue = _part(ctr, "Agent"), _part(ctr, "Queue")
    holds, hold_s = _whole(agent.get("NumberOfHolds")), _whole(agent.get("CustomerHoldDuration"))
    method = ctr.get("InitiationMethod")
    return ContactTimes(
        initiation_method=method if isinstance(method, str) and method else None,
        has_agent=bool(agent),
        recording_start_ms=recording_start_ms,
        connected_to_system_ms=_mark(ctr.get("ConnectedToSystemTimestamp")),
        enqueue_ms=_mark(queue.get("EnqueueTimestamp")),
        dequeue_ms=_mark(queue.get("DequeueTimestamp")),
        connected_to_agent_ms=_mark(agent.get("ConnectedToAgentTimestamp")),
        after_contact_work_start_ms=_mark(agent.get("AfterContactWorkStartTimestamp")),
        transfer_completed_ms=_mark(ctr.get("TransferCompletedTimestamp")),
        disconnect_ms=_mark(ctr.get("DisconnectTimestamp")),
        hold_count=holds,
        hold_ms=None if hold_s is None else hold_s * 1000)


def _connect_attributes(ctr: dict, kvs_source: str) -> tuple[tuple[str, str], ...]:
    """Who took the contact and where it waited. Phone numbers, names and contact attributes are
    personal data (phases.md §5) and never leave the record."""
    agent, queue = _part(ctr, "Agent"), _part(ctr, "Queue")
    routing = agent.get("RoutingProfile") if isinstance(agent.get("RoutingProfile"), dict) else {}
    try:
        last_update = str(iso_to_ms(ctr.get("LastUpdateTimestamp")))
    except ValueError:
        last_update = None
    pairs = (("initiation_method", ctr.get("InitiationMethod")),
             ("disconnect_reason", ctr.get("DisconnectReason")),
             ("agent_username", agent.get("Username")),
             ("queue_name", queue.get("Name")),
             ("routing_profile", routing.get("Name")),
             ("initial_contact_id", ctr.get("InitialContactId")),
             ("previous_contact_id", ctr.get("PreviousContactId")),
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
