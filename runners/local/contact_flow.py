"""Amazon Connect contacts with phases, for the local world: what each phase puts on the two tracks,
and the CTR that describes it (``../shared/domain/phases.md``).

A contact passes IVR -> queue -> agent conversation (with holds) -> after (a survey), and its KVS
stream runs from the flow's *Start media streaming* block to the disconnect: from the top of the
flow, from part-way into the queue, or from the agent answering.  A ``ContactShape`` says which
phases a contact has, how long each lasts and where its stream starts; ``build`` makes one
contact's stream audio (deterministic in its numpy Generator); ``Contact.ctr`` writes its record on
Connect's clock (whole seconds, skewed against the media clock) and ``Contact.truth`` what the
stream really holds, in ms after its first sample.

What each phase carries (channel 0 = AUDIO_FROM_CUSTOMER, channel 1 = AUDIO_TO_CUSTOMER):
  ivr     the caller answering by voice or DTMF keys | spoken prompts with pauses
  queue   line noise, maybe a faint cough             | hold music, an announcement every 30 s
  agent   the conversation; on hold, line noise       | the conversation; on hold, hold music
  after   a key press                                 | a survey prompt
Every channel carries the faint line noise of ``conversation.synthesise`` (±32 LSB): a telephone
line is never digitally silent.
"""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from runners.local import sounds
from runners.local.kvs_store import ACCOUNT, REGION

RATE = 8000
PER_MS = RATE // 1000
FRAME = 160  # 20 ms
NOISE_LSB = 32
QUIET_MS = 400  # a hold goes where both sides are silent this long around it: between turns
QUIET_PEAK = 300  # below this a 20 ms frame holds no speech (as conversation.placed_turns)
HOLD_SEARCH_MS = 5000  # how far from its requested offset a hold may move to find that quiet
PROMPT_SAMPLES = (RATE * 3 // 2, RATE * 4)  # IVR prompts are short sentences: 1.5-4 s
ANNOUNCE_EVERY_MS = 30_000
DUCK_DB = -24.0  # the queue music under an announcement
DTMF_AMPLITUDE = 32768 * 10 ** (-10 / 20)  # each tone; the pair sums to about -10 dBFS RMS
DTMF = {"1": (697, 1209), "2": (697, 1336), "3": (697, 1477), "4": (770, 1209), "5": (770, 1336),
        "6": (770, 1477), "7": (852, 1209), "8": (852, 1336), "9": (852, 1477), "0": (941, 1336),
        "#": (941, 1477)}

STREAM_STARTS = ("ivr", "queue", "agent")
QUEUE_NAME = "Repairs"
AGENTS = ("sam.porter", "jo.okafor", "lee.marsh")
ROUTING_PROFILES = {"INBOUND": "Repairs inbound", "OUTBOUND": "Repairs outbound",
                    "CALLBACK": "Repairs inbound"}


def _ms(seconds: float) -> int:
    return int(round(seconds * 1000))


def _samples(seconds: float) -> int:
    return _ms(seconds) * PER_MS


def _whole_seconds(ms: int) -> int:
    return (ms + 500) // 1000


def iso_seconds(ms: int) -> str:
    """A CTR timestamp: ISO 8601, truncated to the whole second."""
    return dt.datetime.fromtimestamp(ms // 1000, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ContactShape:
    """What a contact passes through and where its stream starts.  ``holds`` are (offset into the
    conversation, length) in seconds; ``stream_offset_s`` (for ``stream_start="queue"``) counts
    from the contact connecting."""
    name: str
    initiation: str = "INBOUND"  # INBOUND, OUTBOUND or CALLBACK (the CTR's InitiationMethod)
    ivr_s: float = 0.0
    queue_s: float = 0.0
    agent: bool = True  # an agent answers: the contact has a conversation
    holds: tuple[tuple[float, float], ...] = ()
    after_s: float = 0.0  # a survey once the agent has left
    stream_start: str = "ivr"  # one of STREAM_STARTS: where Start media streaming sits in the flow
    stream_offset_s: float = 0.0
    disconnect_reason: str = "CUSTOMER_DISCONNECT"

    def __post_init__(self):
        if self.stream_start not in STREAM_STARTS:
            raise ValueError(f"{self.name}: stream_start is one of {STREAM_STARTS}")
        if self.stream_start == "queue" and not self.ivr_s <= self.stream_offset_s < self.ivr_s + self.queue_s:
            raise ValueError(f"{self.name}: a stream starting in the queue starts inside it")
        if not (self.agent or self.ivr_s):
            raise ValueError(f"{self.name}: a contact without an agent needs an IVR")
        if self.stream_start == "agent" and not self.agent:
            raise ValueError(f"{self.name}: no agent answers, so no stream can start there")

    @property
    def stream_from_ms(self) -> int:
        """Where the stream's first sample falls, in ms after the contact connected."""
        return {"ivr": 0, "queue": _ms(self.stream_offset_s),
                "agent": _ms(self.ivr_s) + _ms(self.queue_s)}[self.stream_start]


SHAPES = {s.name: s for s in (
    ContactShape("full", ivr_s=12, queue_s=20, holds=((20, 12),), after_s=6,
                 disconnect_reason="CONTACT_FLOW_DISCONNECT"),
    ContactShape("two_holds", ivr_s=10, queue_s=15, holds=((12, 8), (28, 10)),
                 disconnect_reason="AGENT_DISCONNECT"),
    ContactShape("agent_start", ivr_s=12, queue_s=20, stream_start="agent",
                 disconnect_reason="AGENT_DISCONNECT"),
    ContactShape("late_start", ivr_s=12, queue_s=20, stream_start="queue", stream_offset_s=20),
    ContactShape("abandoned", ivr_s=10, queue_s=20, agent=False),
    ContactShape("self_service", ivr_s=12, agent=False, disconnect_reason="CONTACT_FLOW_DISCONNECT"),
    ContactShape("outbound", initiation="OUTBOUND", stream_start="agent",
                 disconnect_reason="AGENT_DISCONNECT"),
    ContactShape("plain", stream_start="agent"),
)}


def shape_of(entry: str | ContactShape) -> ContactShape:
    if isinstance(entry, ContactShape):
        return entry
    if entry not in SHAPES:
        raise ValueError(f"unknown contact shape {entry!r}: one of {sorted(SHAPES)}")
    return SHAPES[entry]


@dataclass(frozen=True)
class Staff:
    """Who took the contact and where it waited; None where it never got that far."""
    agent: str | None
    routing_profile: str | None
    queue: str | None


def staffing(shape: ContactShape, index: int) -> Staff:
    agent = AGENTS[index % len(AGENTS)] if shape.agent else None
    return Staff(agent=agent, routing_profile=ROUTING_PROFILES[shape.initiation] if agent else None,
                 queue=QUEUE_NAME if shape.queue_s else None)


def whole_ms(customer: np.ndarray, agent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A conversation cut to a whole ms (its last < 8 samples of line noise), so that every phase
    boundary of the contact is an exact ms in the truth."""
    n = min(len(customer), len(agent)) // PER_MS * PER_MS
    return customer[:n], agent[:n]


# ---- phase audio --------------------------------------------------------------------------------

def _line(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(-NOISE_LSB, NOISE_LSB + 1, n).astype(np.int32)


def _s16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def _put(channel: np.ndarray, at: int, sound: np.ndarray) -> None:
    """Mix ``sound`` in at sample ``at``; what runs past the channel's end is cut."""
    part = sound[:max(len(channel) - at, 0)]
    channel[at:at + len(part)] += part.astype(channel.dtype)


def _fitting(clips: list[np.ndarray], room: int, rng: np.random.Generator) -> np.ndarray | None:
    fits = [c for c in clips if len(c) <= room]
    return fits[int(rng.integers(len(fits)))] if fits else None


def _music(n: int, rng: np.random.Generator) -> np.ndarray:
    return sounds.hold_music(n / RATE + 1, rng)[:n].astype(np.float64)


def dtmf(keys: str, rng: np.random.Generator) -> np.ndarray:
    """Key presses: each a 100-200 ms pair of a row and a column tone, 80-150 ms apart."""
    parts = []
    for key in keys:
        t = np.arange(_samples(rng.uniform(0.1, 0.2))) / RATE
        low, high = DTMF[key]
        parts += [DTMF_AMPLITUDE * (np.sin(2 * np.pi * low * t) + np.sin(2 * np.pi * high * t)),
                  np.zeros(_samples(rng.uniform(0.08, 0.15)))]
    return _s16(np.concatenate(parts))


def _keys(count: int, rng: np.random.Generator) -> str:
    return "".join(rng.choice(list(DTMF), size=count))


def ivr_audio(n: int, clips: dict, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Short prompts until the phase is full, the caller answering each: by keys after the first
    (a menu), by voice after the next (a speech-recognising one), and so on in turn."""
    customer, agent = _line(n, rng), _line(n, rng)
    prompts = [c for c in clips["agent"] if PROMPT_SAMPLES[0] <= len(c) <= PROMPT_SAMPLES[1]]
    at, by_voice = _samples(rng.uniform(0.3, 0.8)), False
    while (prompt := _fitting(prompts, n - at - _samples(1.5), rng)) is not None:
        _put(agent, at, prompt)
        at += len(prompt) + _samples(rng.uniform(0.4, 0.9))
        answer = _fitting(clips["customer"], n - at, rng) if by_voice else None
        if answer is None:
            answer = dtmf(_keys(int(rng.integers(1, 4)), rng), rng)
        _put(customer, at, answer)
        at += len(answer) + _samples(rng.uniform(0.6, 1.2))
        by_voice = not by_voice
    return _s16(customer), _s16(agent)


def queue_audio(n: int, clips: dict, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Queue music with a spoken announcement every 30 s, the first 10-15 s in, the music ducked
    under it; the caller waits on an open line, now and then a faint cough."""
    music, voice = _music(n, rng), np.zeros(n)
    at = _samples(rng.uniform(10, 15))
    while at < n:
        clip = clips["agent"][int(rng.integers(len(clips["agent"])))]
        margin = _samples(0.3)
        music[max(at - margin, 0):at + len(clip) + margin] *= 10 ** (DUCK_DB / 20)
        _put(voice, at, clip)
        at += ANNOUNCE_EVERY_MS * PER_MS
    customer = _line(n, rng)
    if n > RATE and rng.random() < 0.5:
        customer += sounds.transients(n, 1, rng, level_dbfs=-40)[0]
    return _s16(customer), _s16(music + voice + _line(n, rng))


def hold_audio(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The customer-hold flow: music to the caller, whose side stays quiet."""
    return _s16(_line(n, rng)), _s16(_music(n, rng) + _line(n, rng))


def after_audio(n: int, clips: dict, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """After the agent leaves: a survey prompt, answered by one key."""
    customer, agent = _line(n, rng), _line(n, rng)
    at = _samples(rng.uniform(0.3, 0.6))
    prompt = _fitting(clips["agent"], n - at - _samples(1.0), rng)
    if prompt is None:
        prompt = min(clips["agent"], key=len)
    _put(agent, at, prompt)
    _put(customer, at + len(prompt) + _samples(rng.uniform(0.5, 0.9)), dtmf(_keys(1, rng), rng))
    return _s16(customer), _s16(agent)


def _frame_peaks(x: np.ndarray, frames: int) -> np.ndarray:
    return np.abs(x[:frames * FRAME].astype(np.int32)).reshape(frames, FRAME).max(axis=1)


def quiet_point(customer: np.ndarray, agent: np.ndarray, near: int, low: int = 0) -> int:
    """A 20 ms frame edge (a sample index) at or after ``low``, nearest ``near``, with both sides
    quiet for QUIET_MS around it, so a hold inserted there cuts no word; where no such edge lies
    within HOLD_SEARCH_MS of ``near`` (a noisy real recording), the quietest edge there."""
    frames = min(len(customer), len(agent)) // FRAME
    near = min(max(near, low), frames * FRAME)
    first, last = max(-(-low // FRAME), 1), frames - 1
    reach = HOLD_SEARCH_MS * PER_MS // FRAME
    edges = np.arange(max(first, near // FRAME - reach), min(last, near // FRAME + reach) + 1)
    if edges.size == 0:
        return near // FRAME * FRAME
    half = QUIET_MS // 2 // 20
    peaks = np.maximum(_frame_peaks(customer, frames), _frame_peaks(agent, frames))
    around = sliding_window_view(np.pad(peaks, half, mode="edge"), 2 * half).max(axis=1)[edges]
    quiet = edges[around < QUIET_PEAK]
    if quiet.size:
        return int(quiet[np.argmin(np.abs(quiet * FRAME - near))]) * FRAME
    return int(edges[np.argmin(around)]) * FRAME


def with_holds(customer: np.ndarray, agent: np.ndarray, holds: tuple[tuple[float, float], ...],
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
    """The conversation with each hold (offset_s, length_s) inserted between turns near its offset,
    and the holds' (start, end) in ms after the conversation's start."""
    sides: tuple[list, list] = ([], [])
    spans, taken, inserted = [], 0, 0
    for offset_s, length_s in sorted(holds):
        # a second later than the last hold at the earliest: two holds never merge into one
        point = quiet_point(customer, agent, _samples(offset_s), low=taken + (RATE if taken else 0))
        held = hold_audio(_samples(length_s), rng)
        for side, talk in enumerate((customer, agent)):
            sides[side].extend((talk[taken:point], held[side]))
        start_ms = (point + inserted) // PER_MS
        spans.append((start_ms, start_ms + len(held[0]) // PER_MS))
        taken, inserted = point, inserted + len(held[0])
    return (np.concatenate([*sides[0], customer[taken:]]), np.concatenate([*sides[1], agent[taken:]]),
            spans)


# ---- one contact ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Contact:
    """One contact: its stream's audio (from its first sample to the disconnect) and its flow, in
    ms after it connected (ConnectedToSystemTimestamp, on the media clock)."""
    shape: ContactShape
    contact_id: str
    staff: Staff
    customer: np.ndarray
    agent: np.ndarray
    phases: tuple[tuple[str, int, int], ...]  # the whole flow, also what happened before the stream
    holds: tuple[tuple[int, int], ...]
    ring_ms: int  # OUTBOUND and CALLBACK: from initiation until the customer answers
    acw_ms: int  # the agent's after-contact work, off the line

    @property
    def duration_ms(self) -> int:
        return len(self.customer) // PER_MS

    @property
    def disconnect_ms(self) -> int:
        return self.phases[-1][2]

    @property
    def settled_ms(self) -> int:
        """When the record is complete: the disconnect, or the end of after-contact work."""
        agent = self.span("agent")
        return self.disconnect_ms if agent is None else max(self.disconnect_ms, agent[1] + self.acw_ms)

    def span(self, phase: str) -> tuple[int, int] | None:
        return next(((a, b) for p, a, b in self.phases if p == phase), None)

    def hold_totals(self) -> tuple[int, int, int]:
        """NumberOfHolds, CustomerHoldDuration and LongestHoldDuration (whole seconds)."""
        held = [b - a for a, b in self.holds]
        return len(held), _whole_seconds(sum(held)), _whole_seconds(max(held, default=0))

    def truth(self) -> dict:
        """What the stream holds, in ms after its first sample, and what the CTR says of holds."""
        skip = self.shape.stream_from_ms
        phases = [{"phase": p, "start_ms": max(a - skip, 0), "end_ms": b - skip}
                  for p, a, b in self.phases if b > skip]
        agent = self.span("agent")
        count, held_s, _ = self.hold_totals()
        return {
            "shape": self.shape.name, "initiation_method": self.shape.initiation,
            "agent_username": self.staff.agent, "queue_name": self.staff.queue,
            "routing_profile": self.staff.routing_profile, "phases": phases,
            "holds": [{"start_ms": a - skip, "end_ms": b - skip} for a, b in self.holds],
            "conversation": None if agent is None else {"start_ms": agent[0] - skip, "end_ms": agent[1] - skip},
            "hold_ms_ctr": None if agent is None else held_s * 1000,
            "hold_count_ctr": None if agent is None else count,
        }

    def ctr(self, *, instance_id: str, stream_arn: str, fragments: list[str], stream_start_ms: int,
            skew_ms: int, last_update_ms: int, attributes: dict, complete: bool = True) -> dict:
        """The contact's CTR.  ``stream_start_ms`` is the stream's first sample and
        ``last_update_ms`` the record's update, both on the media clock; Connect's clock runs
        ``skew_ms`` ahead of it.  A record that is not ``complete`` went out before the
        after-contact work and the hold totals were in (a re-delivery adds them)."""
        connected = stream_start_ms - self.shape.stream_from_ms

        def at(flow_ms: int) -> str:
            return iso_seconds(connected + flow_ms + skew_ms)

        instance_arn = f"arn:aws:connect:{REGION}:{ACCOUNT}:instance/{instance_id}"
        return {
            "AWSAccountId": ACCOUNT,
            "AWSContactTraceRecordFormatVersion": "2017-03-10",
            "Agent": self._agent(instance_arn, at, complete),
            "Attributes": attributes,
            "Channel": "VOICE",
            "ConnectedToSystemTimestamp": at(0),
            "ContactId": self.contact_id,
            "CustomerEndpoint": {"Address": "+15095550187", "Type": "TELEPHONE_NUMBER"},
            "DisconnectReason": self.shape.disconnect_reason,
            "DisconnectTimestamp": at(self.disconnect_ms),
            "InitialContactId": None,
            "InitiationMethod": self.shape.initiation,
            "InitiationTimestamp": at(-self.ring_ms),
            "InstanceARN": instance_arn,
            "LastUpdateTimestamp": iso_seconds(last_update_ms + skew_ms),
            "MediaStreams": [{"Type": "AUDIO"}],
            "PreviousContactId": None,
            "Queue": self._queue(instance_arn, at),
            "Recording": None,
            "Recordings": [{
                "DeletionReason": None,
                "FragmentStartNumber": fragments[0],
                "FragmentStopNumber": fragments[-1],
                "Location": stream_arn,
                "MediaStreamType": "AUDIO",
                "ParticipantType": "CUSTOMER",
                "StartTimestamp": at(self.shape.stream_from_ms),
                "Status": None,
                # second precision, rounded up so that the window covers the last fragment
                "StopTimestamp": at(self.disconnect_ms + 999),
                "StorageType": "KINESIS_VIDEO_STREAM",
            }],
            "SystemEndpoint": {"Address": "+12065550160", "Type": "TELEPHONE_NUMBER"},
            "TransferredToEndpoint": None,
        }

    def _queue(self, instance_arn: str, at) -> dict | None:
        queue = self.span("queue")
        if self.staff.queue is None or queue is None:
            return None
        return {"ARN": _arn(instance_arn, "queue", self.staff.queue), "Name": self.staff.queue,
                "EnqueueTimestamp": at(queue[0]), "DequeueTimestamp": at(queue[1]),
                "Duration": _whole_seconds(queue[1] - queue[0])}

    def _agent(self, instance_arn: str, at, complete: bool) -> dict | None:
        talk = self.span("agent")
        if self.staff.agent is None or talk is None:
            return None
        count, held_s, longest_s = self.hold_totals()
        held_ms = sum(b - a for a, b in self.holds)
        profile = self.staff.routing_profile
        agent = {
            "ARN": _arn(instance_arn, "agent", self.staff.agent), "Username": self.staff.agent,
            "ConnectedToAgentTimestamp": at(talk[0]),
            "AgentInteractionDuration": _whole_seconds(talk[1] - talk[0] - held_ms),
            "RoutingProfile": {"ARN": _arn(instance_arn, "routing-profile", profile), "Name": profile},
            "HierarchyGroups": None,
            "NumberOfHolds": None, "CustomerHoldDuration": None, "LongestHoldDuration": None,
            "AfterContactWorkStartTimestamp": None, "AfterContactWorkEndTimestamp": None,
            "AfterContactWorkDuration": None,
        }
        if complete:
            agent.update(NumberOfHolds=count, CustomerHoldDuration=held_s, LongestHoldDuration=longest_s,
                         AfterContactWorkStartTimestamp=at(talk[1]),
                         AfterContactWorkEndTimestamp=at(talk[1] + self.acw_ms),
                         AfterContactWorkDuration=_whole_seconds(self.acw_ms))
        return agent


def _arn(instance_arn: str, kind: str, name: str) -> str:
    """A stable resource ARN per name, so one agent or queue has one ARN all day."""
    return f"{instance_arn}/{kind}/{uuid.uuid5(uuid.NAMESPACE_URL, f'{kind}/{name}')}"


def build(shape: ContactShape, conversation: tuple[np.ndarray, np.ndarray] | None, *, contact_id: str,
          staff: Staff, clips: dict, rng: np.random.Generator) -> Contact:
    """One contact's stream audio and flow.  ``conversation`` is the (customer, agent) of the agent
    phase, whole ms (``whole_ms``), without its holds; None when no agent answers."""
    if shape.agent and conversation is None:
        raise ValueError(f"{shape.name}: an agent answers, so the contact needs a conversation")
    sections = []
    if shape.ivr_s:
        sections.append(("ivr", ivr_audio(_samples(shape.ivr_s), clips, rng)))
    if shape.queue_s:
        sections.append(("queue", queue_audio(_samples(shape.queue_s), clips, rng)))
    held: list[tuple[int, int]] = []
    if shape.agent:
        customer, agent, held = with_holds(*conversation, shape.holds, rng)
        sections.append(("agent", (customer, agent)))
        if shape.after_s:
            sections.append(("after", after_audio(_samples(shape.after_s), clips, rng)))
    phases, at = [], 0
    for name, (customer, _) in sections:
        phases.append((name, at, at + len(customer) // PER_MS))
        at = phases[-1][2]
    talk_from = next((a for p, a, _ in phases if p == "agent"), 0)
    skip = shape.stream_from_ms * PER_MS
    return Contact(
        shape=shape, contact_id=contact_id, staff=staff,
        customer=np.concatenate([c for _, (c, _) in sections])[skip:],
        agent=np.concatenate([a for _, (_, a) in sections])[skip:],
        phases=tuple(phases), holds=tuple((talk_from + a, talk_from + b) for a, b in held),
        ring_ms=int(rng.integers(4000, 9001)) if shape.initiation != "INBOUND" else 0,
        acw_ms=int(rng.integers(10_000, 20_001)) if shape.agent else 0)
