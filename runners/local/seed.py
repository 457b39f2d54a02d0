"""The demo generator: puts calls into the local KVS and their records into the local S3.

What it writes, at the real layouts (shared/domain/records.md):
- Amazon Connect: contacts on a small pool of reused KVS streams (two tracks, track order differing
  between streams), their CTRs in Firehose objects ``connect-ctr/YYYY/MM/dd/HH/<name>`` (records
  concatenated with no delimiter, every other object gzip, one contact re-delivered later with a
  newer LastUpdateTimestamp, the last call of the day arriving after midnight).
- Chime Voice Connector: each call leg on its own reused ``ChimeVoiceConnector-<vcId>-<uuid>``
  stream, one SDR per call under ``chime-sdr/Amazon-Chime-Voice-Connector-SDRs/json/...``, and the
  STARTED/ENDED streaming-status events archived as Firehose would (``chime-events/YYYY/MM/dd/HH/``).
- Optionally a few unusable records (broken JSON, an SDR without fields, an unsafe id) so the
  failures table has something to say.

Connect contacts have phases (shared/domain/phases.md), made by ``contact_flow``: each takes the
next shape of ``WorldConfig.contacts`` in turn, e.g. ``full`` (IVR 12 s, queue 20 s, the
conversation with a 12 s hold, a survey after), ``two_holds``, ``agent_start`` (IVR and queue
before the media: the stream starts when the agent answers), ``late_start`` (the stream starts
part-way into the queue), ``abandoned`` (the caller hangs up in the queue: no Agent),
``self_service`` (IVR only: no Agent, no Queue), ``outbound`` (the agent dials; no IVR, no queue)
and ``plain`` (the conversation alone).  The stream holds every phase from its start to the
disconnect; the CTR bounds them (Queue, Agent, after-contact work, hold totals) in whole seconds
on Connect's clock, ``ctr_clock_skew_ms`` ahead of the media.  The re-delivered contact's first
copy lacks what only the re-delivery carries: after-contact work and hold totals.  With
``twins``, each answered contact is followed by a ``plain`` twin holding its conversation alone.

Fragments are ingested straight into the emulator's store (``KvsStore.put_fragment``, our PutMedia):
KVS assigns the numbers, the media writer builds the chunks.

Next to what it seeds, it writes the ground truth (``truth.json``): per call the ids, streams,
fragment numbers, and per channel the sample count and sha256 of the s16le PCM the pipeline must
reassemble (channel 0 customer, channel 1 agent; a Connect contact's whole stream, every phase;
a Chime leg that starts later is preceded by silence from the call's start).  A Connect contact
adds its shape, who took it, its phases, holds and conversation in ms after its first sample,
the CTR's hold totals, and its twin.

Every draw of the main rng is the one it was before contacts had phases (``_LegacyDraws``), so
the Chime calls of every world stay byte-identical; what phases need comes from a second rng.
"""
from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import random
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from runners.local import contact_flow, conversation, mkv_writer
from runners.local.contact_flow import iso_seconds
from runners.local.kvs_store import ACCOUNT, REGION, KvsStore

SAMPLE_RATE = 8000
CONNECT_FRAGMENT_BYTES = 16 * mkv_writer.CONNECT_BLOCK_BYTES  # 1.024 s per track
CHIME_FRAGMENT_BYTES = 50 * mkv_writer.CHIME_BLOCK_BYTES  # 1.000 s
CONNECT_LAG_MS = (150, 80)  # ingest lag of a Connect fragment: base, random extra
REUSE_GAP_MS = 2000  # the next call on a pooled stream starts this soon after the previous ends
RETENTION_HOURS = 87600  # KVS's maximum, so historical demo dates stay inside retention

PREFIX_SDR = "chime-sdr/"
PREFIX_EVENTS = "chime-events/"
PREFIX_CTR = "connect-ctr/"


@dataclass(frozen=True)
class WorldConfig:
    date: str = "2024-05-14"
    connect_calls: int = 4
    chime_calls: int = 3
    # pooled KVS streams the calls are spread over, in turn (a real pool holds one per concurrent call)
    connect_streams: int = 2
    chime_streams: int = 4  # an even number: each call's two legs are on neighbouring streams
    call_seconds: float = 40.0
    seed: int = 20240514
    bucket: str = "voicelake-demo"
    # (customer wav, agent wav) pairs of real recordings, used in turn instead of the clips
    recordings: tuple[tuple[str, str], ...] = ()
    bad_records: bool = True
    # the first Connect call loses this fragment (0-based) on ingest: a dropout the pipeline must
    # fill with silence and report as a gap; None for none
    dropout_fragment: int | None = 5
    # the Connect contacts' shapes, in turn (contact_flow.SHAPES names, or ContactShape values)
    contacts: tuple[str | contact_flow.ContactShape, ...] = ("full", "agent_start", "abandoned", "self_service")
    # each contact an agent answers is followed by a "plain" twin: its conversation recorded
    # alone, without holds, IVR or queue (an extra contact beyond connect_calls)
    twins: bool = False
    # Connect's clock against the media (producer) clock, positive = Connect ahead: every CTR time
    ctr_clock_skew_ms: int = 1370


@dataclass
class Truth:
    date: str
    bucket: str
    prefixes: dict
    calls: list = field(default_factory=list)
    bad_records: list = field(default_factory=list)

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.__dict__, indent=1, sort_keys=True))


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _vc_id(rng: random.Random) -> str:
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(22))


def iso_millis(ms: int) -> str:
    t = dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _channel_truth(samples: np.ndarray) -> dict:
    return {"samples": int(len(samples)),
            "sha256": hashlib.sha256(samples.astype("<i2").tobytes()).hexdigest()}


def _day_start_ms(date: str) -> int:
    day = dt.datetime.strptime(date, "%Y-%m-%d").replace(tzinfo=dt.timezone.utc)
    return int(day.timestamp() * 1000)


class _Conversations:
    def __init__(self, config: WorldConfig, rng: random.Random):
        self.config, self.rng = config, rng
        self.clips = conversation.load_clips()
        self.count = 0

    def next(self) -> tuple[np.ndarray, np.ndarray]:
        recordings = self.config.recordings
        self.count += 1
        if recordings:
            customer_wav, agent_wav = recordings[(self.count - 1) % len(recordings)]
            return conversation.from_recording(customer_wav, agent_wav, self.config.call_seconds)
        return conversation.synthesise(self.rng, self.clips, min_seconds=self.config.call_seconds)


def _put_fragments(store: KvsStore, stream: str, *, start_ms: int, fragment_ms: int,
                   parts: list[tuple[bytes, ...]], lag_ms: tuple[int, int], rng: random.Random,
                   chunk, lost: int | None = None) -> list[str]:
    """Ingest one producer session: fragment k starts at start_ms + k * fragment_ms (producer
    clock) and reaches KVS lag_ms later (server clock); ``chunk(number, producer, server, *part)``
    builds its bytes.  Fragment ``lost`` never reaches KVS (a dropout)."""
    numbers = []
    for k, part in enumerate(parts):
        if k == lost:
            continue
        producer_ms = start_ms + k * fragment_ms
        server_ms = producer_ms + lag_ms[0] + rng.randint(0, lag_ms[1])
        fragment = store.put_fragment(
            stream, producer_ms=producer_ms, server_ms=server_ms,
            duration_ms=len(part[0]) // 2 * 1000 // SAMPLE_RATE,
            make_chunk=lambda number, p=producer_ms, s=server_ms, pt=part: chunk(number, p, s, *pt))
        numbers.append(fragment.number)
    return numbers


def _split(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


def _put_connect_call(store: KvsStore, stream: str, *, start_ms: int, contact_id: str,
                      instance_id: str, customer: np.ndarray, agent: np.ndarray,
                      to_customer_first: bool, rng: random.Random,
                      lost: int | None = None) -> list[str]:
    parts = list(zip(_split(customer.astype("<i2").tobytes(), CONNECT_FRAGMENT_BYTES),
                     _split(agent.astype("<i2").tobytes(), CONNECT_FRAGMENT_BYTES), strict=True))
    return _put_fragments(
        store, stream, start_ms=start_ms, fragment_ms=1024, parts=parts, lag_ms=CONNECT_LAG_MS, rng=rng,
        lost=lost, chunk=lambda number, p, s, from_pcm, to_pcm: mkv_writer.connect_fragment(
            fragment_number=number, producer_ms=p, server_ms=s, contact_id=contact_id,
            instance_id=instance_id, from_customer=from_pcm, to_customer=to_pcm,
            to_customer_first=to_customer_first))


def _put_chime_leg(store: KvsStore, stream: str, *, start_ms: int, transaction_id: str,
                   vc_id: str, call_id: str, pcm: np.ndarray, rng: random.Random) -> list[str]:
    parts = [(p,) for p in _split(pcm.astype("<i2").tobytes(), CHIME_FRAGMENT_BYTES)]
    return _put_fragments(
        store, stream, start_ms=start_ms, fragment_ms=1000, parts=parts, lag_ms=(90, 60), rng=rng,
        chunk=lambda number, p, s, leg_pcm: mkv_writer.chime_fragment(
            fragment_number=number, producer_ms=p, server_ms=s, transaction_id=transaction_id,
            voice_connector_id=vc_id, call_id=call_id, pcm=leg_pcm))


def _firehose_key(prefix: str, name: str, arrival_ms: int, rng: random.Random) -> str:
    t = dt.datetime.fromtimestamp(arrival_ms / 1000, dt.timezone.utc)
    return (f"{prefix}{t:%Y/%m/%d/%H}/{name}-1-{t:%Y-%m-%d-%H-%M-%S}-{_uuid(rng)}")


def _compact(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


class _LegacyDraws:
    """The main rng's draws that the Connect seeding made before contacts had phases: a lag per
    fragment of a conversation-long contact, and an id per Firehose object of that day's CTRs.
    Making exactly these draws, in their old places, keeps every draw after them, so the Chime
    calls of every world stay byte-identical; what the phased contacts need comes from their own
    rng."""

    def __init__(self, config: WorldConfig, rng: random.Random, day: int, streams: int):
        self.config, self.rng, self.day = config, rng, day
        self.cursors = _first_starts(day, streams)
        self.arrivals: list[int] = []

    def contact(self, i: int, samples: int) -> None:
        """Call ``i``, whose conversation has ``samples``, right after its ContactId was drawn."""
        config = self.config
        fragments = -(-samples * 2 // CONNECT_FRAGMENT_BYTES)
        dropout = config.dropout_fragment
        lost = i == 0 and dropout is not None and dropout < fragments - 1
        for _ in range(fragments - lost):
            self.rng.randint(0, CONNECT_LAG_MS[1])
        slot = i % len(self.cursors)
        last_of_day = i == config.connect_calls - 1 and config.connect_calls > 1
        start_ms = self.cursors[slot]
        if last_of_day:
            start_ms = max(start_ms, self.day + 86_400_000 - samples * 1000 // SAMPLE_RATE - 20_000)
        end_ms = start_ms + -(-samples * 1000 // SAMPLE_RATE)
        self.cursors[slot] = end_ms + REUSE_GAP_MS
        self.arrivals.append(end_ms + 1000 + (25_000 if last_of_day else 60_000))
        if i == 1:
            self.arrivals.append(end_ms + 1000 + 3_660_000)

    def firehose_objects(self) -> None:
        hours = {a // 3_600_000 for a in self.arrivals}
        if self.config.bad_records:
            hours.add((self.day + 10 * 3_600_000) // 3_600_000)
        for _ in hours:
            _uuid(self.rng)


def _first_starts(day: int, streams: int) -> list[int]:
    """The streams' first calls start minutes apart, at odd milliseconds."""
    return [day + 9 * 3_600_000 + 317 + k * (7 * 60_000 + 212) for k in range(streams)]


class _ConnectDay:
    """The day's Connect contacts on their pooled streams, each after the last on its stream, with
    their CTR deliveries and their truth."""

    def __init__(self, store: KvsStore, config: WorldConfig, streams: list, instance_id: str,
                 rng: random.Random, truth: Truth):
        self.store, self.config, self.streams, self.instance_id = store, config, streams, instance_id
        self.rng, self.truth = rng, truth
        self.day = _day_start_ms(config.date)
        self.cursors = _first_starts(self.day, len(streams))
        self.deliveries: list[tuple[int, bytes]] = []  # (arrival ms, record bytes)

    def put(self, contact: contact_flow.Contact, *, slot: int, last_of_day: bool, lost: int | None,
            redelivered: bool, twin_of: str | None = None, twin: str | None = None) -> None:
        stream = self.streams[slot]
        start_ms = self.cursors[slot]
        if last_of_day:  # ends just before midnight, its CTR lands in the next day's folder
            start_ms = max(start_ms, self.day + 86_400_000 - contact.duration_ms - 20_000)
        fragments = -(-len(contact.customer) * 2 // CONNECT_FRAGMENT_BYTES)
        lost = lost if lost is not None and lost < fragments - 1 else None
        to_customer_first = slot % 2 == 0  # neighbouring streams order their tracks differently
        numbers = _put_connect_call(
            self.store, stream.name, start_ms=start_ms, contact_id=contact.contact_id,
            instance_id=self.instance_id, customer=contact.customer, agent=contact.agent,
            to_customer_first=to_customer_first, rng=self.rng, lost=lost)
        end_ms = start_ms + contact.duration_ms
        self.cursors[slot] = end_ms + REUSE_GAP_MS
        self._deliver(contact, stream.arn, numbers, start_ms, last_of_day, redelivered)
        customer, agent, gaps = _after_dropout(contact.customer, contact.agent, lost)
        self.truth.calls.append({
            "source": "connect", "call_id": contact.contact_id, "partition_id": self.instance_id,
            "date": self.config.date, "start_ms": start_ms, "end_ms": end_ms,
            "streams": [{"stream_arn": stream.arn, "fragments": numbers,
                         "to_customer_first": to_customer_first}],
            "channels": [_channel_truth(customer), _channel_truth(agent)],
            "redelivered": redelivered, "gaps": gaps, "twin_of": twin_of, "twin": twin,
            **contact.truth(),
        })

    def _deliver(self, contact: contact_flow.Contact, stream_arn: str, numbers: list[str],
                 start_ms: int, last_of_day: bool, redelivered: bool) -> None:
        connected = start_ms - contact.shape.stream_from_ms
        disconnect = connected + contact.disconnect_ms

        def record(last_update_ms: int, attributes: dict, complete: bool = True) -> bytes:
            return _compact(contact.ctr(
                instance_id=self.instance_id, stream_arn=stream_arn, fragments=numbers,
                stream_start_ms=start_ms, skew_ms=self.config.ctr_clock_skew_ms,
                last_update_ms=last_update_ms, attributes=attributes, complete=complete))

        arrival = disconnect + 25_000 if last_of_day else disconnect + 60_000
        if not redelivered:
            self.deliveries.append((arrival, record(connected + contact.settled_ms + 2000, {"queue": "repairs"})))
            return
        # The first copy went out at the disconnect, before the after-contact work and the hold
        # totals were in; an hour later an attribute update re-delivers it whole.
        self.deliveries += [
            (arrival, record(disconnect + 2000, {"queue": "repairs"}, complete=False)),
            (disconnect + 3_660_000, record(disconnect + 3_600_000, {"queue": "repairs", "followUp": "true"})),
        ]


def _after_dropout(customer: np.ndarray, agent: np.ndarray, lost: int | None
                   ) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """What the pipeline must make of a lost fragment: silence on both channels, and a gap."""
    if lost is None:
        return customer, agent, []
    first, stop = lost * CONNECT_FRAGMENT_BYTES // 2, (lost + 1) * CONNECT_FRAGMENT_BYTES // 2
    customer, agent = customer.copy(), agent.copy()
    customer[first:stop] = agent[first:stop] = 0
    return customer, agent, [{"start_ms": lost * 1024, "end_ms": (lost + 1) * 1024}]


def _seed_connect(s3, store: KvsStore, config: WorldConfig, rng: random.Random,
                  talk: _Conversations, truth: Truth) -> None:
    day = _day_start_ms(config.date)
    instance_id = _uuid(rng)
    streams = []
    for i in range(config.connect_streams):
        name = f"voicelake-demo-connect-contact-{_uuid(rng)}"
        streams.append(store.create_stream(name, retention_hours=RETENTION_HOURS,
                                           creation_ms=day - 30 * 86_400_000 + i))
    legacy = _LegacyDraws(config, rng, day, len(streams))
    phases = random.Random(f"{config.seed}-phases")
    connect = _ConnectDay(store, config, streams, instance_id, phases, truth)
    shapes = [contact_flow.shape_of(config.contacts[i % len(config.contacts)])
              for i in range(config.connect_calls)]
    total = len(shapes) + (sum(s.agent for s in shapes) if config.twins else 0)
    placed = 0
    for i, shape in enumerate(shapes):
        # drawn even for a contact that never reaches an agent, so the draws after it stay the same
        conversation = talk.next()
        contact_id = _uuid(rng)
        legacy.contact(i, len(conversation[0]))
        conversation = contact_flow.whole_ms(*conversation)
        contact = contact_flow.build(shape, conversation if shape.agent else None, contact_id=contact_id,
                                     staff=contact_flow.staffing(shape, i), clips=talk.clips,
                                     rng=np.random.default_rng(phases.getrandbits(64)))
        twin = None
        if config.twins and shape.agent:
            plain = contact_flow.SHAPES["plain"]
            twin = contact_flow.build(plain, conversation, contact_id=_uuid(phases),
                                      staff=contact_flow.staffing(plain, i), clips=talk.clips,
                                      rng=np.random.default_rng(phases.getrandbits(64)))
        placing = [(contact, dict(lost=config.dropout_fragment if i == 0 else None, redelivered=i == 1,
                                  twin=twin and twin.contact_id))]
        if twin is not None:
            placing.append((twin, dict(lost=None, redelivered=False, twin_of=contact_id)))
        for one, links in placing:
            connect.put(one, slot=i % len(streams), last_of_day=placed == total - 1 and total > 1, **links)
            placed += 1
    if config.bad_records:
        connect.deliveries.append((day + 10 * 3_600_000, b'{"ContactId":"broken-record","Channel":"VOI'))
        truth.bad_records.append({"source": "connect", "reason": "bad_json"})
    _write_firehose(s3, config.bucket, PREFIX_CTR, "voicelake-ctr-firehose", connect.deliveries, phases)
    legacy.firehose_objects()


def _write_firehose(s3, bucket: str, prefix: str, name: str,
                    deliveries: list[tuple[int, bytes]], rng: random.Random) -> None:
    """Group records by arrival hour into objects: no delimiter, every other object gzip."""
    by_hour: dict[int, list[tuple[int, bytes]]] = {}
    for arrival, data in sorted(deliveries):
        by_hour.setdefault(arrival // 3_600_000, []).append((arrival, data))
    for n, (_, items) in enumerate(sorted(by_hour.items())):
        body = b"".join(data for _, data in items)
        if n % 2:
            body = gzip.compress(body, mtime=0)
        s3.put_object(Bucket=bucket, Key=_firehose_key(prefix, name, items[0][0], rng), Body=body)


def _chime_event(status: str, *, leg: dict, tx: str, vc_id: str, sip_call_id: str,
                 direction: str, event_id: str) -> dict:
    detail = {
        "callId": sip_call_id, "direction": direction, "fromNumber": "+12065550142",
        "toNumber": "+13605550178", "isCaller": leg["is_caller"], "mediaType": "audio/L16",
        "startFragmentNumber": leg["fragments"][0], "startTime": iso_millis(leg["start_ms"]),
        "streamArn": leg["stream_arn"], "transactionId": tx, "voiceConnectorId": vc_id,
        "streamingStatus": status, "version": "0",
    }
    if status == "ENDED":
        detail["endTime"] = iso_millis(leg["end_ms"])
    time_ms = leg["start_ms"] if status == "STARTED" else leg["end_ms"]
    return {"version": "0", "id": event_id, "detail-type": "Chime VoiceConnector Streaming Status",
            "source": "aws.chime", "account": ACCOUNT, "time": iso_seconds(time_ms),
            "region": REGION, "resources": [], "detail": detail}


def _seed_chime(s3, store: KvsStore, config: WorldConfig, rng: random.Random,
                talk: _Conversations, truth: Truth) -> None:
    day = _day_start_ms(config.date)
    vc_id = _vc_id(rng)
    pool = [store.create_stream(f"ChimeVoiceConnector-{vc_id}-{_uuid(rng)}",
                                retention_hours=RETENTION_HOURS,
                                creation_ms=day - 20 * 86_400_000 + i) for i in range(config.chime_streams)]
    cursors = {s.name: day + 13 * 3_600_000 + 211 for s in pool}
    events: list[tuple[int, bytes]] = []
    for i in range(config.chime_calls):
        caller_stream, callee_stream = pool[(2 * i) % len(pool)], pool[(2 * i + 1) % len(pool)]
        customer, agent = talk.next()
        direction = "Inbound" if i % 2 == 0 else "Outbound"
        # Inbound: the customer calls in, so the caller leg is the customer's.
        caller_pcm, callee_pcm = (customer, agent) if direction == "Inbound" else (agent, customer)
        answer_ms = 400 + rng.randint(0, 1600)
        start_ms = max(cursors[caller_stream.name], cursors[callee_stream.name])
        answer_samples = answer_ms * SAMPLE_RATE // 1000
        callee_pcm = callee_pcm.copy()
        callee_pcm[:answer_samples] = 0  # nobody speaks on a leg before it is answered
        tx, sip_call_id = _uuid(rng), f"{rng.getrandbits(128):032x}@192.0.2.10:5060"
        legs = []
        for stream, pcm, is_caller, offset in ((caller_stream, caller_pcm, True, 0),
                                               (callee_stream, callee_pcm, False, answer_samples)):
            leg_start = start_ms + offset * 1000 // SAMPLE_RATE
            numbers = _put_chime_leg(store, stream.name, start_ms=leg_start, transaction_id=tx,
                                     vc_id=vc_id, call_id=sip_call_id, pcm=pcm[offset:], rng=rng)
            leg_end = leg_start + -(-(len(pcm) - offset) * 1000 // SAMPLE_RATE)
            cursors[stream.name] = leg_end + REUSE_GAP_MS
            legs.append({"stream_arn": stream.arn, "fragments": numbers, "is_caller": is_caller,
                         "start_ms": leg_start, "end_ms": leg_end})
        end_ms = max(leg["end_ms"] for leg in legs)
        for leg in legs:
            for status in ("STARTED", "ENDED"):
                event = _chime_event(status, leg=leg, tx=tx, vc_id=vc_id, sip_call_id=sip_call_id,
                                     direction=direction, event_id=_uuid(rng))
                at = leg["start_ms"] if status == "STARTED" else leg["end_ms"]
                events.append((at + 2000, _compact(event)))
        sdr = {
            "SchemaVersion": "1.0", "AwsAccountId": ACCOUNT, "TransactionId": tx,
            "CallId": sip_call_id, "VoiceConnectorId": vc_id,
            "StartTimeEpochSeconds": start_ms // 1000, "EndTimeEpochSeconds": -(-end_ms // 1000),
            "Status": "Completed", "StatusMessage": "Streaming succeeded",
            "ServiceCode": "AmazonChime", "UsageType": "USE1-VC-kinesis-audio-streaming",
            "BillableDurationSeconds": -(-(end_ms - start_ms) // 6000) * 6, "Region": REGION,
        }
        t = dt.datetime.fromtimestamp(start_ms / 1000, dt.timezone.utc)
        key = (f"{PREFIX_SDR}Amazon-Chime-Voice-Connector-SDRs/json/{vc_id}/{t:%Y/%m/%d}/"
               f"{t:%H.%M.%S}.{start_ms % 1000:03d}_{tx}")
        s3.put_object(Bucket=config.bucket, Key=key, Body=json.dumps(sdr, indent=4).encode())
        channel_customer = customer.copy()
        channel_agent = agent.copy()
        (channel_customer if direction == "Outbound" else channel_agent)[:answer_samples] = 0
        truth.calls.append({
            "source": "chime", "call_id": tx, "partition_id": vc_id, "date": config.date,
            "start_ms": start_ms, "end_ms": end_ms, "direction": direction,
            "streams": [{"stream_arn": leg["stream_arn"], "fragments": leg["fragments"],
                         "is_caller": leg["is_caller"]} for leg in legs],
            "channels": [_channel_truth(channel_customer), _channel_truth(channel_agent)],
            "sdr_key": key,
        })
    if config.bad_records:
        t = dt.datetime.fromtimestamp((day + 14 * 3_600_000) / 1000, dt.timezone.utc)
        key = (f"{PREFIX_SDR}Amazon-Chime-Voice-Connector-SDRs/json/{vc_id}/{t:%Y/%m/%d}/"
               f"{t:%H.%M.%S}.000_{_uuid(rng)}")
        s3.put_object(Bucket=config.bucket, Key=key, Body=b'{"SchemaVersion": "1.0"}')
        truth.bad_records.append({"source": "chime", "reason": "missing_field", "key": key})
    _write_firehose(s3, config.bucket, PREFIX_EVENTS, "voicelake-chime-events", events, rng)


def seed_world(s3, store: KvsStore, config: WorldConfig, truth_path: Path | None = None) -> Truth:
    """Seed one demo day: Connect and Chime calls in KVS, their records in S3; return the truth."""
    rng = random.Random(config.seed)
    s3.create_bucket(Bucket=config.bucket)
    truth = Truth(date=config.date, bucket=config.bucket,
                  prefixes={"sdr": PREFIX_SDR, "events": PREFIX_EVENTS, "ctr": PREFIX_CTR})
    talk = _Conversations(config, rng)
    if config.connect_calls:
        _seed_connect(s3, store, config, rng, talk, truth)
    if config.chime_calls:
        _seed_chime(s3, store, config, rng, talk, truth)
    if truth_path is not None:
        truth.write(truth_path)
    return truth
