"""The conversation's structure and its talk metrics, from each channel's speech frames, over the
part of the call that is the conversation.

The conversation is what Contact Lens analyses (``../shared/domain/phases.md`` §3): the ``agent``
phase of a Connect contact, holds included, or the whole of a one-phase call.  Speech during a hold
(vocals in the hold music, a caller talking to someone in the room) is no talk, and the whole hold
is non-talk time, as Contact Lens counts it.  A contact that never reached an agent has no
conversation: every column here is null for it.

Conversation structure (all channels share one timeline, sample 0 = start of the call window):
  - a segment lying wholly inside one segment of another channel is a *backchannel*: it counts as
    talk and overlap (and can interrupt) but does not take the turn;
  - the other segments, ordered by start, form *turns*: maximal runs from the same channel; a turn
    spans from its first segment's start to its latest end;
  - *reply gap* of a turn = its start minus the end of the previous turn (negative = it started
    before the other party finished);
  - *interruption* by X = an onset of an X segment while another channel has been in one segment
    for at least ``interrupt_lead_ms`` (300) and stays in it at least ``interrupt_hold_ms`` (300)
    after the onset.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from voicelake.audio import samples_to_ms

ROLES = ("customer", "agent")
# The columns measured over the conversation, null when a call has none.
CHANNEL_COLUMNS = ("talk_ms", "talk_share", "longest_silence_ms", "turns", "longest_turn_ms",
                   "reply_gap_ms_p50", "interruptions")
CALL_COLUMNS = (*(f"talk_ms_{r}" for r in ROLES), "overlap_ms", "overlap_ratio", "non_talk_ms",
                "non_talk_ratio", "long_silence_count", "longest_silence_ms", "turns",
                *(f"interruptions_{r}" for r in ROLES))


@dataclass(frozen=True)
class Scope:
    """The conversation in frames: [first, end), and which of its frames are talk time (not held)."""
    first: int
    end: int
    talk: np.ndarray  # bool over all frames: inside the conversation and outside every hold


@dataclass(frozen=True)
class _Talk:
    seg_start_ms: np.ndarray
    seg_end_ms: np.ndarray


def runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of the True runs of a boolean array, ends exclusive."""
    edges = np.diff(mask.astype(np.int8), prepend=0, append=0)
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def ratio(part: int, whole: int) -> float:
    return round(part / whole, 6) if whole else 0.0


def measure(speech: Sequence[np.ndarray], bounds: np.ndarray, rate: int, roles: Sequence[str | None],
            scope: Scope | None, *, long_silence_ms: int, interrupt_lead_ms: int,
            interrupt_hold_ms: int) -> tuple[list[dict], dict]:
    """(per-channel columns, call columns) of the conversation; all null without one."""
    if scope is None:
        return ([dict.fromkeys(CHANNEL_COLUMNS) for _ in speech], dict.fromkeys(CALL_COLUMNS))
    span_ms = int(samples_to_ms(bounds[scope.end] - bounds[scope.first], rate))
    talking = [s & scope.talk for s in speech]
    talks = [_Talk(samples_to_ms(bounds[a], rate), samples_to_ms(bounds[b], rate))
             for a, b in (runs(t) for t in talking)]
    turn_owner, turn_start, turn_end = _turns(talks)
    reply_gaps = turn_start[1:] - turn_end[:-1]
    interruptions = _interruptions(talks, interrupt_lead_ms, interrupt_hold_ms)
    channels = []
    for c, (talk, t) in enumerate(zip(talks, talking, strict=True)):
        mine = turn_owner == c
        replies = reply_gaps[mine[1:]]
        talk_ms = int((talk.seg_end_ms - talk.seg_start_ms).sum())
        channels.append({
            "talk_ms": talk_ms,
            "talk_share": ratio(talk_ms, span_ms),
            "longest_silence_ms": int(_quiet_ms(~t, scope, bounds, rate).max(initial=0)),
            "turns": int(mine.sum()),
            "longest_turn_ms": int((turn_end[mine] - turn_start[mine]).max(initial=0)),
            "reply_gap_ms_p50": int(np.round(np.median(replies))) if len(replies) else None,
            "interruptions": interruptions[c],
        })
    speaking = np.sum(talking, axis=0)[scope.first:scope.end]
    lengths = np.diff(bounds)[scope.first:scope.end]
    overlap_ms = int(samples_to_ms(lengths[speaking >= 2].sum(), rate))
    non_talk_ms = int(samples_to_ms(lengths[speaking == 0].sum(), rate))
    quiet_ms = _quiet_ms(np.sum(talking, axis=0) == 0, scope, bounds, rate)
    call = {
        **{f"talk_ms_{role}": _by_role(channels, roles, role, "talk_ms") for role in ROLES},
        "overlap_ms": overlap_ms,
        "overlap_ratio": ratio(overlap_ms, span_ms),
        "non_talk_ms": non_talk_ms,
        "non_talk_ratio": ratio(non_talk_ms, span_ms),
        "long_silence_count": int(np.count_nonzero(quiet_ms > long_silence_ms)),
        "longest_silence_ms": int(quiet_ms.max(initial=0)),
        "turns": max(len(turn_owner) - 1, 0),
        **{f"interruptions_{role}": _by_role(channels, roles, role, "interruptions") for role in ROLES},
    }
    return channels, call


def _quiet_ms(quiet: np.ndarray, scope: Scope, bounds: np.ndarray, rate: int) -> np.ndarray:
    """Lengths in ms of the quiet runs inside the conversation (its edges included)."""
    starts, ends = runs(quiet[scope.first:scope.end])
    return samples_to_ms(bounds[scope.first + ends] - bounds[scope.first + starts], rate)


def _by_role(rows: list[dict], roles: Sequence[str | None], role: str, key: str):
    """The value of the one channel with this role; None if no channel or several have it."""
    values = [r[key] for r, named in zip(rows, roles, strict=True) if named == role]
    return values[0] if len(values) == 1 else None


def _backchannels(talks: list[_Talk]) -> list[np.ndarray]:
    """Per channel, which segments lie wholly inside one segment of another channel."""
    inside = []
    for c, ch in enumerate(talks):
        flags = np.zeros(len(ch.seg_start_ms), dtype=bool)
        for o, other in enumerate(talks):
            if o != c and len(other.seg_start_ms):
                k = np.searchsorted(other.seg_start_ms, ch.seg_start_ms, side="right") - 1
                k0 = np.maximum(k, 0)
                # an identical segment in both channels is no backchannel: both keep the turn
                same = ((other.seg_start_ms[k0] == ch.seg_start_ms)
                        & (other.seg_end_ms[k0] == ch.seg_end_ms))
                flags |= (k >= 0) & (other.seg_end_ms[k0] >= ch.seg_end_ms) & ~same
        inside.append(flags)
    return inside


def _interruptions(talks: list[_Talk], lead_ms: int, hold_ms: int) -> list[int]:
    """Per channel, onsets while another channel is mid-segment with enough lead and hold."""
    counts = []
    for c, ch in enumerate(talks):
        hit = np.zeros(len(ch.seg_start_ms), dtype=bool)
        for o, other in enumerate(talks):
            if o != c and len(other.seg_start_ms):
                onset = ch.seg_start_ms
                k = np.maximum(np.searchsorted(other.seg_start_ms, onset, side="right") - 1, 0)
                hit |= ((other.seg_start_ms[k] <= onset - lead_ms)
                        & (other.seg_end_ms[k] >= onset + hold_ms))
        counts.append(int(hit.sum()))
    return counts


def _turns(talks: list[_Talk]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(channel, start_ms, end_ms) of each turn, in order."""
    inside = _backchannels(talks)
    owner = np.concatenate([np.full(int((~b).sum()), c) for c, b in enumerate(inside)])
    starts = np.concatenate([ch.seg_start_ms[~b] for ch, b in zip(talks, inside, strict=True)])
    ends = np.concatenate([ch.seg_end_ms[~b] for ch, b in zip(talks, inside, strict=True)])
    order = np.lexsort((owner, starts))
    owner, starts, ends = owner[order], starts[order], ends[order]
    if not len(owner):
        return owner, starts, ends
    heads = np.flatnonzero(np.concatenate(([True], owner[1:] != owner[:-1])))
    return owner[heads], starts[heads], np.maximum.reduceat(ends, heads)
