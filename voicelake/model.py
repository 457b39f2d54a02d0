"""The values that travel between the pipeline's stages, as small immutable types.

call record (CTR / SDR + streaming events)  --records-->  CallSpec (+ RecordFailure)
CallSpec --fragments--> FragmentRange (one GetMediaForFragmentList request's worth)
FragmentRange* of one stream --media--> StreamAudio (its tracks written to channel files on the
  call's sample grid as the body streams in: only paths and covered ranges travel on)
StreamAudio* of one call --audio--> features + WAVs --> rows of calls / channels / segments / gaps,
  written as row shards beside the lake: only a CallRows note travels on to the sink
Anything that cannot go on becomes a Failure row with its reason.

Times are integer epoch milliseconds (``*_ms``), UTC.  Fragment numbers stay decimal strings and
are compared as ``int``.
"""
from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # channel files need numpy; records and plans do not
    from voicelake.media.channel_file import ChannelPiece

CONNECT = "connect"
CHIME = "chime"


@dataclass(frozen=True)
class StreamSpan:
    """One KVS stream a call's audio lives on, and which part of it belongs to the call.

    Connect: one span, both tracks (``channel`` is None: the tracks decide the channels).
    Chime: one span per call leg; ``channel`` is the output channel of that leg.
    ``stream_arn`` is None when the stream must be discovered (Chime without streaming events):
    then ``discover_prefix`` names the Voice Connector's stream-name prefix.
    """
    stream_arn: str | None
    start_ms: int
    end_ms: int
    channel: int | None = None
    role: str | None = None  # customer / agent
    start_fragment: str | None = None
    stop_fragment: str | None = None
    is_caller: bool | None = None
    discover_prefix: str | None = None


@dataclass(frozen=True)
class ContactTimes:
    """What an Amazon Connect CTR says of a contact's phases (``../shared/domain/phases.md`` §2):
    epoch ms on Connect's clock, whole seconds; None where the CTR has no such field.

    ``recording_start_ms`` is the KVS recording's ``StartTimestamp`` on that clock: the one mark
    whose media time is known (the stream's first sample), so it anchors the others on the media.
    """
    initiation_method: str | None = None
    has_agent: bool = False  # the CTR names an agent (Agent is null on abandoned, self-service,
    # unanswered contacts, and until a re-delivery adds it)
    recording_start_ms: int | None = None
    connected_to_system_ms: int | None = None
    enqueue_ms: int | None = None
    dequeue_ms: int | None = None
    connected_to_agent_ms: int | None = None
    after_contact_work_start_ms: int | None = None
    transfer_completed_ms: int | None = None
    disconnect_ms: int | None = None
    hold_count: int | None = None  # Agent.NumberOfHolds
    hold_ms: int | None = None  # Agent.CustomerHoldDuration x 1000

    @property
    def agent_end_ms(self) -> int | None:
        """Where the conversation ends: the first of after-contact work, a completed transfer and
        the disconnect."""
        ends = [t for t in (self.after_contact_work_start_ms, self.transfer_completed_ms,
                            self.disconnect_ms) if t is not None]
        return min(ends) if ends else None


@dataclass(frozen=True)
class CallSpec:
    source: str  # CONNECT or CHIME
    call_id: str  # Connect ContactId or Chime TransactionId
    partition_id: str  # Connect instance id or Chime VoiceConnectorId (already allow-listed)
    date: str  # YYYY-MM-DD (UTC) the call belongs to
    start_ms: int
    end_ms: int
    streams: tuple[StreamSpan, ...]
    tag_name: str  # the fragment tag that says whose fragment it is: ContactId / TransactionId
    source_key: str  # the record's object key
    source_offset: int = 0  # byte offset of the record inside that object
    attributes: tuple[tuple[str, str], ...] = field(default=())  # direction, sip_call_id, ...
    contact: ContactTimes | None = None  # Connect: the CTR's phase marks; Chime: None (one phase)


@dataclass(frozen=True)
class ListedFragment:
    """A fragment as ListFragments lists it."""
    number: str
    producer_ms: int
    server_ms: int
    duration_ms: int
    size: int


@dataclass(frozen=True)
class FragmentList:
    """Listed fragments, packed into one compressed value.

    Ranges cross the per-stream shuffle, and a local runner keeps every shuffled value of the night
    in its own process: as objects, a 5-minute call's fragments cost about 42 KB there; packed,
    about 1 KB (fragment numbers are long and share their leading digits).  Iterating unpacks."""
    packed: bytes
    count: int

    @classmethod
    def of(cls, fragments: Iterable[ListedFragment]) -> FragmentList:
        lines = [f"{f.number},{f.producer_ms},{f.server_ms},{f.duration_ms},{f.size}" for f in fragments]
        return cls(zlib.compress("\n".join(lines).encode(), 6), len(lines))

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[ListedFragment]:
        if not self.count:
            return
        for line in zlib.decompress(self.packed).decode().split("\n"):
            number, *values = line.split(",")
            yield ListedFragment(number, *(int(v) for v in values))


@dataclass(frozen=True)
class FragmentRange:
    """One GetMediaForFragmentList request's worth of a call's fragments on one stream."""
    call: CallSpec
    stream_index: int  # which stream of the call (discovered streams get their own indexes)
    stream_arn: str
    channel: int | None
    fragments: FragmentList  # sorted by fragment number
    range_index: int


@dataclass(frozen=True)
class StreamAudio:
    """One stream of a call after fetching: each audio track written to a channel file on the
    call's grid.  This is what crosses the per-call shuffle: paths, covered ranges and counts,
    never samples."""
    call: CallSpec
    stream_index: int
    stream_arn: str
    channel: int | None
    tracks: tuple[tuple[str, ChannelPiece], ...] = ()  # (track name, its channel file)
    fragments_kept: int = 0
    fragments_foreign: int = 0
    missing: tuple[tuple[str, str], ...] = ()  # (fragment number, why it never arrived)
    bytes_read: int = 0  # every byte read, retries included (the run's cost)
    fragment_bytes: int = 0  # bytes of the fragments that arrived whole, each once (the call's media)
    error: tuple[str, str] | None = None  # (reason, detail) when the stream could not be fetched


@dataclass(frozen=True)
class Failure:
    """A record, call or range that could not be turned into output, and why."""
    stage: str  # records / fragments / media / audio / write
    reason: str  # short machine-readable code, e.g. bad_json, fragment_not_found
    detail: str  # human-readable message
    source: str | None = None
    call_id: str | None = None
    partition_id: str | None = None
    date: str | None = None
    source_key: str | None = None
    source_offset: int | None = None


@dataclass(frozen=True)
class CallRows:
    """A landed call, as the lake's sink needs it: its rows wait in row shards in the scratch
    (``voicelake.lake_files``), so only this note crosses the last shuffle, never the rows."""
    date: str
    partition: str
    source: str
    call_id: str
    tables: tuple[str, ...]  # the tables it has rows in
    wavs: tuple[str, ...]  # the WAVs it wrote, full paths
    partial: bool
