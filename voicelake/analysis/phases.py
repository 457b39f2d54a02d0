"""A call's timeline cut into phases: ``ivr``, ``queue``, ``agent``, ``after`` (Amazon Connect,
from the CTR), or one ``call`` (Chime, or wherever nothing bounds a phase), and the ``hold``\\ s
inside ``agent``, found in the audio.

Placing the CTR on the media (``../shared/domain/phases.md`` §5): CTR times are whole seconds on
Connect's clock, the samples are on the KVS producer clock.  The KVS recording's StartTimestamp is
the one CTR time whose media time is known, the stream's first sample, so every mark is placed at
``mark - recording start`` ms after sample 0: whatever the skew between the clocks, it cancels,
and what is left is the two marks' sub-second parts, under 1 s either way.  Without that anchor
(a stream named in contact attributes) the clocks are taken to agree.

The audio then refines the boundaries it can hear, within ``SEARCH_MS`` of the CTR's:
  - the agent answering: where the queue's music stops (the end of the last run of sound the VAD
    rejects on the agent side);
  - the queue starting: where the music starts.
A boundary the audio moved says ``ctr+audio``; one the CTR alone placed, ``ctr``.

Holds (the CTR has only totals): inside ``agent``, a stretch of at least ``MIN_HOLD_MS`` where the
agent side carries sound the VAD rejects (music; holes under ``BRIDGE_MS`` bridged, so vocals and
quiet bars do not split it) and is speech in at most ``HOLD_SPEECH_MAX`` of its frames.  Where the
CTR gives NumberOfHolds, the audio's holds are checked against it: extra ones (the shortest) are
dropped, and missing ones are taken from the longest stretches where neither side speaks (a hold
flow without music).  Holds need the neural VAD: the level gate calls music speech.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from voicelake.audio import ms_to_samples, samples_to_ms
from voicelake.model import ContactTimes

IVR, QUEUE, AGENT, AFTER, CALL, HOLD = "ivr", "queue", "agent", "after", "call", "hold"
PHASES = (IVR, QUEUE, AGENT, AFTER)  # the Connect phases, in the order a contact passes them
BY_CTR, BY_AUDIO, BY_BOTH = "ctr", "audio", "ctr+audio"
NO_IVR = ("OUTBOUND", "CALLBACK")  # initiation methods that start with no inbound flow
SNAP_MS = 1500  # a mark this close to the stream's edge is the edge (whole seconds, skew)
SEARCH_MS = 1500  # how far from the CTR's boundary the audio may move it
MIN_HOLD_MS = 5000
BRIDGE_MS = 2000
HOLD_SPEECH_MAX = 0.3


@dataclass(frozen=True)
class Phase:
    """One interval of a call, in ms after its sample 0; ``boundary`` says what placed it."""
    phase: str
    start_ms: int
    end_ms: int
    boundary: str = BY_CTR

    @property
    def duration_ms(self) -> int:
        return self.end_ms - self.start_ms


@dataclass(frozen=True)
class Activity:
    """What the VAD heard on one channel, per frame; frame i covers samples [bounds[i], bounds[i+1])."""
    bounds: np.ndarray
    speech: np.ndarray  # bool
    sound: np.ndarray | None  # bool: sound that is not speech (None: the VAD cannot tell)


@dataclass(frozen=True)
class CallPhases:
    """The phases of a call, the holds inside its conversation, and what the CTR said of holds."""
    phases: tuple[Phase, ...]
    holds: tuple[Phase, ...]
    hold_count: int | None  # None: not looked for (no conversation, or a one-phase call)
    hold_ms: int | None

    @property
    def conversation(self) -> Phase | None:
        """The part Contact Lens analyses: ``agent`` (holds included), or the whole of a one-phase
        call; None for a contact that never reached an agent."""
        return next((p for p in self.phases if p.phase in (AGENT, CALL)), None)

    @property
    def single(self) -> bool:
        return [p.phase for p in self.phases] == [CALL]

    def total_ms(self, name: str) -> int:
        return sum(p.duration_ms for p in self.phases if p.phase == name)


def ctr_phases(contact: ContactTimes | None, media_start_ms: int, duration_ms: int) -> list[Phase]:
    """The phases the CTR bounds, placed on the media (see the module docstring), clipped to the
    audio the stream holds; ``[call]`` when the CTR cannot place a conversation it names."""
    whole = [Phase(CALL, 0, duration_ms, BY_AUDIO)]
    if contact is None or (contact.has_agent and contact.connected_to_agent_ms is None):
        return whole
    anchor = contact.recording_start_ms if contact.recording_start_ms is not None else media_start_ms

    def at(mark: int | None) -> int | None:
        if mark is None:
            return None
        t = mark - anchor
        return 0 if t < SNAP_MS else duration_ms if t > duration_ms - SNAP_MS else t

    outbound = contact.initiation_method in NO_IVR
    enqueue = at(contact.enqueue_ms)
    end = at(contact.agent_end_ms)
    end = duration_ms if end is None else end
    cuts: list[tuple[str, int | None]]
    if contact.has_agent:
        agent = at(contact.connected_to_agent_ms)
        if outbound and contact.connected_to_system_ms is not None:  # talk starts when they answer
            agent = max(agent, at(contact.connected_to_system_ms))
        # the wait before an outbound contact's answer is queueing for the customer, never an IVR
        cuts = [(QUEUE if outbound else IVR, 0), (QUEUE, enqueue), (AGENT, agent), (AFTER, end)]
    else:
        dequeue = at(contact.dequeue_ms)
        cuts = [(QUEUE if outbound else IVR, 0), (QUEUE, enqueue),
                (AFTER, min(end, dequeue) if dequeue is not None else end)]
    return _tile([(name, t) for name, t in cuts if t is not None], duration_ms)


def _tile(cuts: list[tuple[str, int]], duration_ms: int) -> list[Phase]:
    """Phases from (name, start) cuts: each runs to the next later start; empty ones vanish."""
    phases = []
    for i, (name, start) in enumerate(cuts):
        later = [t for _, t in cuts[i + 1:] if t >= start]
        end = min(later) if later else duration_ms
        start = max([start] + [p.end_ms for p in phases])
        if end > start:
            phases.append(Phase(name, start, end))
    return phases


def refine(phases: list[Phase], agent: Activity | None, rate: int) -> list[Phase]:
    """Move the queue's start and the agent's answer to where the agent side's music starts and
    stops, when that lies within SEARCH_MS of the CTR's boundary."""
    if agent is None or agent.sound is None or len(phases) < 2:
        return phases
    out = list(phases)
    for i in range(1, len(out)):
        before, after = out[i - 1], out[i]
        if (before.phase, after.phase) in ((IVR, QUEUE), (AGENT, QUEUE)):
            moved = _music_edge(agent, rate, after.start_ms, starts=True)
        elif before.phase == QUEUE and after.phase == AGENT:
            moved = _music_edge(agent, rate, after.start_ms, starts=False)
        else:
            continue
        if moved is not None and before.start_ms < moved < after.end_ms:
            out[i - 1] = Phase(before.phase, before.start_ms, moved, BY_BOTH)
            out[i] = Phase(after.phase, moved, after.end_ms, BY_BOTH)
    return out


def _frame_at(activity: Activity, ms: int, rate: int) -> int:
    return int(np.searchsorted(activity.bounds, ms_to_samples(ms, rate), side="left"))


def _ms_at(activity: Activity, frame: int, rate: int) -> int:
    return int(samples_to_ms(activity.bounds[min(frame, len(activity.bounds) - 1)], rate))


def _music_edge(agent: Activity, rate: int, ms: int, *, starts: bool) -> int | None:
    """Where music starts (``starts``) or stops near ``ms``: the first onset / last offset of the
    agent side's non-speech sound inside the search window, with no music on its other side within
    the window."""
    lo = _frame_at(agent, ms - SEARCH_MS, rate)
    hi = _frame_at(agent, ms + SEARCH_MS, rate)
    music = agent.sound[lo:hi]
    if not music.any() or music.all():
        return None
    edges = np.flatnonzero(np.diff(music.astype(np.int8)))
    if starts:  # the first onset after which the window is mostly music
        onsets = [e + 1 for e in edges if not music[e] and music[e + 1:].mean() > 0.8]
        return _ms_at(agent, lo + onsets[0], rate) if onsets else None
    offsets = [e + 1 for e in edges if music[e] and not music[e + 1:].any()]
    return _ms_at(agent, lo + offsets[-1], rate) if offsets else None


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    edges = np.diff(mask.astype(np.int8), prepend=0, append=0)
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(),
                    strict=True))


def _bridged(mask: np.ndarray, max_gap: int) -> np.ndarray:
    """``mask`` with False holes of at most ``max_gap`` frames between True runs filled."""
    out = mask.copy()
    runs = _runs(mask)
    for (_, end), (start, _) in zip(runs, runs[1:], strict=False):
        if start - end <= max_gap:
            out[end:start] = True
    return out


def find_holds(conversation: Phase, contact: ContactTimes | None, agent: Activity,
               customer: Activity | None, rate: int) -> tuple[list[Phase], int | None, int | None]:
    """(holds, hold_count, hold_ms) inside the conversation; see the module docstring."""
    ctr_count = contact.hold_count if contact is not None else None
    ctr_ms = contact.hold_ms if contact is not None else None
    if agent.sound is None:  # the level gate hears music as speech: only the CTR can tell
        return [], ctr_count, ctr_ms
    lo, hi = _frame_at(agent, conversation.start_ms, rate), _frame_at(agent, conversation.end_ms, rate)
    frame_ms = max(1, int(samples_to_ms(int(np.median(np.diff(agent.bounds[:64]))), rate)))
    music = _bridged(agent.sound[lo:hi], BRIDGE_MS // frame_ms)
    found = []
    for a, b in _runs(music):
        if a == 0:  # the queue's music running on past the answer, not a hold
            continue
        start, end = _ms_at(agent, lo + a, rate), _ms_at(agent, lo + b, rate)
        if end - start >= MIN_HOLD_MS and agent.speech[lo + a:lo + b].mean() <= HOLD_SPEECH_MAX:
            found.append(Phase(HOLD, start, end, BY_AUDIO))
    if ctr_count is None:
        return found, len(found), sum(h.duration_ms for h in found)
    if len(found) > ctr_count:
        found = sorted(sorted(found, key=lambda h: -h.duration_ms)[:ctr_count], key=lambda h: h.start_ms)
    elif len(found) < ctr_count:
        found = sorted(found + _silent_holds(agent, customer, lo, hi, found, ctr_count - len(found), rate),
                       key=lambda h: h.start_ms)
    if not found and ctr_count:  # the audio cannot tell where: the CTR's totals are the answer
        return [], ctr_count, ctr_ms
    holds = [Phase(HOLD, h.start_ms, h.end_ms, BY_BOTH) for h in found]
    return holds, len(holds), sum(h.duration_ms for h in holds)


def _silent_holds(agent: Activity, customer: Activity | None, lo: int, hi: int,
                  taken: list[Phase], count: int, rate: int) -> list[Phase]:
    """The ``count`` longest stretches of at least MIN_HOLD_MS where neither side speaks, apart
    from the holds already found."""
    quiet = ~agent.speech[lo:hi]
    if customer is not None:
        quiet &= ~customer.speech[lo:hi]
    spans = []
    for a, b in _runs(quiet):
        start, end = _ms_at(agent, lo + a, rate), _ms_at(agent, lo + b, rate)
        if end - start >= MIN_HOLD_MS and a > 0 and lo + b < hi and not any(
                start < h.end_ms and h.start_ms < end for h in taken):
            spans.append(Phase(HOLD, start, end, BY_BOTH))
    return sorted(spans, key=lambda h: -h.duration_ms)[:count]


def call_phases(contact: ContactTimes | None, *, media_start_ms: int, duration_ms: int, rate: int,
                agent: Activity | None, customer: Activity | None) -> CallPhases:
    """Everything above, for one call: the phases (refined), and its holds."""
    phases = ctr_phases(contact, media_start_ms, duration_ms)
    if [p.phase for p in phases] == [CALL]:
        return CallPhases(tuple(phases), (), None, None)
    phases = refine(phases, agent, rate)
    talk = next((p for p in phases if p.phase == AGENT), None)
    if talk is None or agent is None:
        return CallPhases(tuple(phases), (), None, None)
    holds, count, total = find_holds(talk, contact, agent, customer, rate)
    return CallPhases(tuple(phases), tuple(holds), count, total)


def phase_of(phases: CallPhases, start_ms: int, end_ms: int) -> str | None:
    """The phase a span lies in (by its midpoint): ``hold`` inside a hold, else its phase."""
    mid = (start_ms + end_ms) // 2
    for p in phases.holds + phases.phases:
        if p.start_ms <= mid < p.end_ms:
            return p.phase
    return None
