"""Training units out of the lake's tables: which stretch of which channel becomes one example.

A unit is a span of one channel of one call (or of the whole call, every channel), in ms from the
call's ``start_time``, which is sample 0 of the call's WAVs.  Three kinds:

- ``segment``: the VAD segments of the ``segments`` table in the phases asked for, optionally
  merged across short pauses of the same channel and phase, split when too long, dropped when too
  short, then padded;
- ``channel``: one unit per channel, the whole call long;
- ``call``: one unit per call with every channel.

Segment units come by default from the conversation alone, the ``agent`` phase of a Connect
contact or the whole of a one-phase ``call`` (``../shared/domain/phases.md``): the agent side of
the IVR, the queue, a hold or what plays after the agent leaves is prompts, bot speech and music,
which the lake files as agent speech, and would teach a model that a recorded prompt is an agent.

Splits are per call, from a hash of the call id (never a call in two splits, the same split on
every run and every machine), or per call date where a date range is given for a split.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field

from voicelake.analysis.phases import AFTER, AGENT, CALL, HOLD, IVR, QUEUE

KINDS = ("segment", "channel", "call")
PHASES = (IVR, QUEUE, AGENT, HOLD, AFTER, CALL)  # in the order a contact passes them
CONVERSATION = (AGENT, CALL)  # the phases segment units come from unless others are asked for
# Why segment units leave the other phases out unless asked for: they are not the conversation.
NOT_TALK = ("In ivr, queue, hold and after no agent talks to the customer: the agent channel carries "
            "a flow's prompts, bot speech or music, which the lake files as agent speech, and the "
            "customer talks to a machine or to someone in the room.")


@dataclass(frozen=True)
class Segment:
    """One row of the lake's ``segments`` table, as far as units need it."""
    channel: int
    start_ms: int
    end_ms: int
    phase: str | None = CALL  # None: the lake placed it in no phase


@dataclass(frozen=True)
class UnitOptions:
    kind: str = "segment"
    min_ms: int = 0             # segment units shorter than this (before padding) are dropped
    max_ms: int | None = None   # longer ones are split into equal pieces of at most this
    merge_pause_ms: int = 0     # same-channel neighbours this close are merged (up to max_ms)
    pad_ms: int = 0             # added at both ends, within the call
    roles: tuple[str, ...] | None = None  # channels of these roles only; None = all channels
    phases: tuple[str, ...] | None = None  # segments of these phases only; None = CONVERSATION

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unit kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        unknown = [p for p in self.phases or () if p not in PHASES]
        if unknown:
            raise ValueError(f"unknown phase {unknown[0]!r}: the phases are {', '.join(PHASES)}")
        if self.phases is not None and not self.phases:
            raise ValueError(f"no phase asked for: name some of {', '.join(PHASES)}")
        if self.phases is not None and self.kind != "segment":
            raise ValueError(f"phases pick segments: {self.kind} units span the whole call, every "
                             "phase; use segment units to choose phases")
        if min(self.min_ms, self.merge_pause_ms, self.pad_ms) < 0:
            raise ValueError("unit durations must not be negative")
        if self.max_ms is not None and self.max_ms <= 0:
            raise ValueError("the maximum unit duration must be positive")
        if self.max_ms is not None and self.min_ms > self.max_ms:
            raise ValueError("the minimum unit duration is above the maximum")

    @property
    def wanted_phases(self) -> tuple[str, ...]:
        """The phases segment units come from, in contact order."""
        asked = CONVERSATION if self.phases is None else self.phases
        return tuple(p for p in PHASES if p in asked)

    def describe(self) -> str:
        """One line for the dataset card."""
        if self.kind == "call":
            return "one unit per call: the whole call, every channel"
        roles = ", ".join(self.roles) if self.roles else "every role"
        if self.kind == "channel":
            return f"one unit per channel ({roles}): the whole call on that channel"
        parts = [f"the VAD segments of each channel ({roles}) in the phases "
                 f"{', '.join(self.wanted_phases)}"]
        if self.merge_pause_ms:
            parts.append(f"merged with the next segment of the same channel and phase across pauses of at most "
                         f"{self.merge_pause_ms} ms" + (f" while the result stays within {self.max_ms} ms"
                                                        if self.max_ms else ""))
        if self.max_ms:
            parts.append(f"split into equal pieces of at most {self.max_ms} ms when longer")
        if self.min_ms:
            parts.append(f"dropped when shorter than {self.min_ms} ms")
        if self.pad_ms:
            parts.append(f"padded by {self.pad_ms} ms at both ends within the call (padded units "
                         f"may overlap their neighbours)")
        return "; ".join(parts)

    def describe_phases(self) -> str:
        """For the dataset card: which phases of the calls the units hold, and why the others not."""
        if self.kind != "segment":
            return (f"every phase: {self.kind} units span the whole call, so a Connect contact's IVR, "
                    f"queue, holds and after-call flow are in them too. {NOT_TALK}")
        wanted = self.wanted_phases
        beyond = [p for p in wanted if p not in CONVERSATION]
        left_out = [p for p in PHASES if p not in wanted]
        text = f"segments in {', '.join(wanted)}"
        if beyond:
            text += f" ({', '.join(beyond)}: outside the conversation, asked for with --phases)"
        else:
            text += (": the conversation, i.e. the agent phase of an Amazon Connect contact or the "
                     "whole of a one-phase call")
        if left_out:
            text += f". Left out: {', '.join(left_out)}"
        return f"{text}. {NOT_TALK}" + (" That is why only agent and call are exported by default."
                                        if beyond else "")


@dataclass(frozen=True)
class Unit:
    call_id: str
    index: int                      # 0-based, in (channel, start) order within the call
    channel: int | None             # None: every channel (call units)
    start_ms: int
    end_ms: int
    segments: int                   # VAD segments that overlap the unit
    speech_ms: int                  # of this unit's channel(s) inside the unit
    overlap_ms: int                 # inside the unit, time another channel also speaks
    id: str = field(default="")
    phase: str | None = None        # the phase of its segments; None: channel and call units

    @property
    def duration_ms(self) -> int:
        return self.end_ms - self.start_ms


def unit_id(call_id: str, channel: int | None, index: int) -> str:
    return call_id if channel is None else f"{call_id}-{channel}-{index:05d}"


def _merge(spans: list[tuple[int, int]], pause_ms: int, max_ms: int | None) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start - merged[-1][1] <= pause_ms and (
                max_ms is None or end - merged[-1][0] <= max_ms):
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _split(start: int, end: int, max_ms: int | None) -> list[tuple[int, int]]:
    """Equal pieces (to the ms) of at most max_ms: no short tail that min_ms would then drop."""
    if max_ms is None or end - start <= max_ms:
        return [(start, end)]
    pieces = -(-(end - start) // max_ms)
    bounds = [start + (end - start) * i // pieces for i in range(pieces + 1)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def _covered(spans: list[tuple[int, int]], start: int, end: int) -> tuple[int, int]:
    """(ms of [start, end) covered by the spans, spans touching it)."""
    total = touching = 0
    for s, e in spans:
        inside = min(e, end) - max(s, start)
        if inside > 0:
            total += inside
            touching += 1
    return total, touching


def _union(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def _overlap(spans: list[tuple[int, int]], others: list[tuple[int, int]], start: int, end: int) -> int:
    """ms inside [start, end) where one of ``spans`` and one of ``others`` both run."""
    mine = [(max(s, start), min(e, end)) for s, e in _union(spans) if min(e, end) > max(s, start)]
    return sum(_covered(_union(others), s, e)[0] for s, e in mine)


def phase_runs(segments: list[Segment], wanted: tuple[str, ...]) -> list[tuple[str, list[tuple[int, int]]]]:
    """One channel's segments, in start order, as runs of consecutive segments of one wanted
    phase: a unit is made within a run, so it never merges across a phase change or across a
    segment of a phase left out (whose audio would otherwise sit inside the unit)."""
    out: list[tuple[str, list[tuple[int, int]]]] = []
    previous = None
    for s in segments:
        if s.phase in wanted:
            if s.phase != previous:
                out.append((s.phase, []))
            out[-1][1].append((s.start_ms, s.end_ms))
        previous = s.phase
    return out


def make_units(call_id: str, duration_ms: int, roles: dict[int, str | None],
               segments: list[Segment], options: UnitOptions) -> list[Unit]:
    """The call's units in (channel, start) order; ``roles`` maps every channel to its role."""
    ordered = sorted(segments, key=lambda s: (s.channel, s.start_ms, s.end_ms))
    by_channel: dict[int, list[tuple[int, int]]] = {c: [] for c in roles}
    for s in ordered:
        by_channel.setdefault(s.channel, []).append((s.start_ms, s.end_ms))
    everyone = [span for spans in by_channel.values() for span in spans]
    if options.kind == "call":
        speech = _union(everyone)
        crosstalk = sum(_overlap(by_channel[a], by_channel[b], 0, duration_ms)
                        for a in by_channel for b in by_channel if a < b)
        return [Unit(call_id, 0, None, 0, duration_ms, len(everyone),
                     sum(e - s for s, e in speech), crosstalk, unit_id(call_id, None, 0))]
    wanted = sorted(c for c in by_channel if options.roles is None or roles.get(c) in options.roles)
    units: list[Unit] = []
    for channel in wanted:
        own = by_channel[channel]
        others = [span for c, spans in by_channel.items() if c != channel for span in spans]
        if options.kind == "channel":
            spans: list[tuple[str | None, int, int]] = [(None, 0, duration_ms)]
        else:
            runs = phase_runs([s for s in ordered if s.channel == channel], options.wanted_phases)
            pieces = [(phase, *p) for phase, run in runs
                      for s, e in _merge(run, options.merge_pause_ms, options.max_ms)
                      for p in _split(s, e, options.max_ms)]
            spans = [(phase, max(0, s - options.pad_ms), min(duration_ms, e + options.pad_ms))
                     for phase, s, e in pieces if e - s >= max(options.min_ms, 1)]
        for phase, start, end in spans:
            speech, touching = _covered(own, start, end)
            index = len(units)
            units.append(Unit(call_id, index, channel, start, end, touching, speech,
                              _overlap(own, others, start, end), unit_id(call_id, channel, index),
                              phase))
    return units


# --- splits -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SplitOptions:
    fractions: tuple[tuple[str, float], ...] = (("train", 0.8), ("dev", 0.1), ("test", 0.1))
    # (split, first date, last date): calls of those days go to that split, whatever their hash
    date_ranges: tuple[tuple[str, str, str], ...] = ()

    def __post_init__(self):
        total = sum(f for _, f in self.fractions)
        if not self.fractions or any(f < 0 for _, f in self.fractions) or abs(total - 1) > 1e-9:
            raise ValueError(f"split fractions must be non-negative and add up to 1, not {total:g}")
        names = [n for n, _ in self.fractions]
        if len(set(names)) != len(names):
            raise ValueError("a split is named twice")
        for name, first, last in self.date_ranges:
            if dt.date.fromisoformat(last) < dt.date.fromisoformat(first):
                raise ValueError(f"split {name}: {last} is before {first}")

    @property
    def names(self) -> tuple[str, ...]:
        seen = dict.fromkeys(n for n, _ in self.fractions)
        seen.update(dict.fromkeys(n for n, _, _ in self.date_ranges))
        return tuple(seen)

    def describe(self) -> str:
        fractions = ", ".join(f"{n} {f:g}" for n, f in self.fractions)
        text = f"by call: sha256 of the call id, as a fraction of 2^64, against the cumulative " \
               f"fractions {fractions}"
        for name, first, last in self.date_ranges:
            text += f"; every call dated {first} to {last} goes to {name}"
        return text


def hash_fraction(call_id: str) -> float:
    """The call id's place in [0, 1): the first 8 bytes of its sha256 over 2^64."""
    return int.from_bytes(hashlib.sha256(call_id.encode()).digest()[:8], "big") / 2 ** 64


def split_of(call_id: str, date: str, options: SplitOptions) -> str:
    for name, first, last in options.date_ranges:
        if first <= date <= last:  # ISO dates compare as strings
            return name
    place, cumulative = hash_fraction(call_id), 0.0
    for name, fraction in options.fractions:
        cumulative += fraction
        if place < cumulative:
            return name
    return [n for n, f in options.fractions if f > 0][-1]  # rounding of the last boundary


def parse_phases(text: str | None) -> tuple[str, ...] | None:
    """``agent,call,ivr`` -> ("agent", "call", "ivr"); None (the default) when not given."""
    if text is None:
        return None
    return tuple(p.strip() for p in text.split(",") if p.strip())


def parse_fractions(text: str) -> tuple[tuple[str, float], ...]:
    """``train=0.8,dev=0.1,test=0.1`` -> (("train", 0.8), ...)."""
    out = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = item.partition("=")
        if not name or not value:
            raise ValueError(f"split fraction {item!r} is not NAME=FRACTION")
        out.append((name.strip(), float(value)))
    return tuple(out)


def parse_date_ranges(text: str | None) -> tuple[tuple[str, str, str], ...]:
    """``test=2024-05-14..2024-05-20,dev=2024-05-21`` -> ((split, first, last), ...)."""
    out = []
    for item in filter(None, (p.strip() for p in (text or "").split(","))):
        name, _, span = item.partition("=")
        first, _, last = span.partition("..")
        if not name or not first:
            raise ValueError(f"split date range {item!r} is not NAME=FIRST..LAST")
        first, last = dt.date.fromisoformat(first).isoformat(), dt.date.fromisoformat(last or first).isoformat()
        out.append((name.strip(), first, last))
    return tuple(out)
