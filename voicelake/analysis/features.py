"""Conversation and signal-quality features of a call, from its aligned int16 channels alone.

Everything is measured on the un-normalised s16 signal, levels in dBFS (0 dBFS = a full-scale square
wave, i.e. RMS 32768), with -120 dBFS standing for digital silence so no value is ever -inf or NaN.
Statistics that need speech (speech level, SNR, reply gap) are None when there is none.

Voice activity (``VadConfig`` holds every threshold), by default ``silero-v5``: the neural VAD of
``voicelake.analysis.vad`` gives every 20 ms frame a speech probability (the ``SpeechPass`` over the samples,
once the first pass has measured the channel's noise floor); speech starts where it reaches
``threshold`` (0.5) and lasts until it falls below ``release`` (0.35), and the runs are then
smoothed as in step 3 below.  Sound the model rejects but the level gate (steps 1-3) hears, more
than ``merge_gap_ms`` from any speech, is the channel's ``non_speech_ms``: hold music, prompts, noise.

The level gate, method ``energy-v1`` (``--vad energy``):
  1. frames of 20 ms, hop = frame: every sample is in exactly one frame, so frame sums are exact
     times (a last, shorter frame takes the remainder).  Frame level = 10·log10(mean square) dBFS.
  2. threshold = max(floor_dbfs (-45), noise floor + noise_margin_db (12)), where the noise floor
     is the 10th percentile of the channel's frame levels; frames above it are "active".
  3. pauses shorter than 200 ms between active runs are bridged (hangover), then runs shorter than
     100 ms are dropped (clicks, blips).  What remains are the channel's speech segments.
  Limits: zero-filled gaps count as (digital) silence in the noise floor; a channel loud in more
  than 90 % of its frames (tone, music, speech without pauses) is its own noise floor, and
  energy-v1 then finds little or no speech in it.
Frames are a reshape, not ``librosa.util.frame``: with hop = frame it is the same view, and importing
librosa.util costs seconds per worker (numba) for nothing.

Phases (``voicelake.analysis.phases``) cut the call's timeline; the talk, silence, overlap and
turn-taking columns are measured over the conversation (``voicelake.analysis.conversation``);
signal quality (levels, noise floor, SNR, clipping, DC) stays a property of the whole channel.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from voicelake import audio
from voicelake.analysis import conversation, phases, vad
from voicelake.analysis.conversation import ROLES, ratio, runs
from voicelake.audio import FULL_SCALE, Gap, samples_to_ms
from voicelake.model import ContactTimes

ENERGY = "energy-v1"
SILERO = vad.MODEL_NAME
VAD_METHOD = ENERGY  # the level gate's name, as vad_method spells it
SILERO_ONLY = ("threshold", "release", "skip_margin_db", "background_db")  # VadConfig fields the level gate ignores
SILENCE_DBFS = -120.0  # stands for digital silence (and floors every level)
CLIP_LEVEL = 32735  # |s| >= 99.9 % of 32767 counts as clipped
CLIP_EVENT_SAMPLES = 3  # a run of this many clipped samples is a flat top, i.e. a clip event


@dataclass(frozen=True)
class VadConfig:
    model: str = SILERO  # or ENERGY: the level gate alone
    threshold: float = 0.5  # speech starts where the model's probability reaches this
    release: float = 0.35  # ... and lasts until it falls below this (Silero's own hysteresis)
    skip_margin_db: float | None = 3.0  # windows this close to the noise floor are not run (None: all)
    # neural VAD: segments this many dB below the channel's own speech level (the 75th percentile of
    # its speech frame levels) are another talker far off (a colleague, a TV), not the channel's
    # speaker, and are dropped; None keeps them.  benchmarks/vad.py measures what it does.
    background_db: float | None = 15.0
    frame_ms: int = 20
    floor_dbfs: float = -45.0  # the threshold never goes below this
    noise_margin_db: float | None = 12.0  # None: fixed threshold at floor_dbfs
    noise_percentile: float = 10.0
    merge_gap_ms: int = 200  # shorter pauses inside speech are speech
    min_speech_ms: int = 100  # shorter speech runs are dropped
    long_silence_ms: int = 5000  # call silences longer than this are counted (as Google CCAI)
    interrupt_lead_ms: int = 300
    interrupt_hold_ms: int = 300

    def __post_init__(self):
        if self.model not in (SILERO, ENERGY):
            raise ValueError(f"unknown VAD model {self.model!r}: {SILERO} or {ENERGY}")

    @property
    def neural(self) -> bool:
        return self.model == SILERO

    @property
    def method(self) -> str:
        """What ``vad_method`` says: ``silero-v5(threshold=0.5,background_db=15.0)`` or
        ``energy-v1``, with every other parameter appended that differs from its default."""
        default = VadConfig(model=self.model)
        shown = ["threshold", "background_db"] if self.neural else []
        changed = [f for f in self.__dataclass_fields__ if f != "model" and f not in shown
                   and not (f in SILERO_ONLY and not self.neural)
                   and getattr(self, f) != getattr(default, f)]
        params = [f"{f}={getattr(self, f)}" for f in shown + changed]
        return f"{self.model}({','.join(params)})" if params else self.model


ENERGY_V1 = VadConfig(model=ENERGY)

# What each method is, in one sentence, for the dataset card and the docs.
METHOD_NOTES = {
    SILERO: "Silero VAD v5, a neural model, on 32 ms windows: speech from probability 0.5 until it "
            "falls below 0.35, then pauses under 200 ms bridged and runs under 100 ms dropped; hold "
            "music, prompts and noise are not speech",
    ENERGY: "a level gate: 20 ms frames above max(-45 dBFS, 10th percentile level + 12 dB), pauses "
            "under 200 ms bridged, runs under 100 ms dropped; music and loud noise count as speech",
}


def method_note(method: str) -> str:
    """The sentence of METHOD_NOTES for a vad_method value (parameters after the name ignored)."""
    name = method.split("(", 1)[0]
    return f"{name}: {METHOD_NOTES[name]}" if name in METHOD_NOTES else f"{method}: unknown method"


@dataclass(frozen=True)
class CallAnalysis:
    """Plain values ready to become rows of calls / channels / segments / gaps."""
    call: dict
    channels: list[dict]
    segments: list[dict] = field(default_factory=list)
    gaps: list[dict] = field(default_factory=list)
    phases: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class _Frames:
    """Per-frame statistics of one channel; frame i covers samples [bounds[i], bounds[i+1])."""
    bounds: np.ndarray  # int64, n_frames + 1
    power: np.ndarray  # mean square, full scale = 1
    peak: np.ndarray  # int32 max |sample|

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.bounds)

    @property
    def level_db(self) -> np.ndarray:
        return _db(self.power)


def _db(power):
    """Mean square (full scale = 1) -> dBFS, floored at SILENCE_DBFS."""
    return 10.0 * np.log10(np.maximum(power, 10.0 ** (SILENCE_DBFS / 10)))


def _peak_db(peak: int) -> float:
    """Largest |sample| -> dBFS, floored at SILENCE_DBFS."""
    return _round(_db((int(peak) / FULL_SCALE) ** 2))


class SignalAccumulator:
    """One channel's samples, fed in chunks of any length, reduced to what the features need.

    The state is per 20 ms frame (energy and peak: 12 bytes a frame, 2 MB per channel-hour) plus
    a few counters, so a call of any length is analysed in bounded memory while its samples stream
    past once.  Frame sums are computed per frame, so the result is the same for any chunking.
    """

    def __init__(self, sample_rate: int, frame_ms: int = 20):
        self.rate, self.frame = sample_rate, max(1, sample_rate * frame_ms // 1000)
        self._energy: list[np.ndarray] = []
        self._peak: list[np.ndarray] = []
        self._carry = np.zeros(0, dtype=np.int16)  # the samples of an unfinished frame
        self.samples = 0
        self.total = 0  # sum of the samples, for the DC offset
        self.clipped = 0
        self.clip_events = 0
        self._clip_run = 0  # length of the clipped run reaching the end of the last chunk
        self.lowest = 0
        self.highest = 0

    def add(self, x: np.ndarray) -> None:
        if x.dtype != np.int16 or x.ndim != 1:
            raise ValueError("chunks must be 1-D int16 arrays (the un-normalised s16 signal)")
        if not len(x):
            return
        self.samples += len(x)
        self.total += int(x.sum(dtype=np.int64))
        self.lowest, self.highest = min(self.lowest, int(x.min())), max(self.highest, int(x.max()))
        self._count_clipping(x)
        if len(self._carry):
            x = np.concatenate((self._carry, x))
        full = len(x) // self.frame
        body = x[:full * self.frame].reshape(full, self.frame)
        # einsum in float64 straight from int16: no float copy of the signal, sums exact.
        self._energy.append(np.einsum("ij,ij->i", body, body, dtype=np.float64, casting="unsafe"))
        self._peak.append(np.maximum(body.max(axis=1, initial=0).astype(np.int32),
                                     -body.min(axis=1, initial=0).astype(np.int32)))
        self._carry = x[full * self.frame:].copy()

    def _count_clipping(self, x: np.ndarray) -> None:
        if max(int(x.max()), -int(x.min())) < CLIP_LEVEL:
            self._end_clip_run()
            return
        where = np.flatnonzero((x >= CLIP_LEVEL) | (x <= -CLIP_LEVEL))
        self.clipped += len(where)
        # runs of consecutive indices, found among the (few) clipped samples only
        breaks = np.flatnonzero(np.diff(where) != 1)
        firsts = np.concatenate(([0], breaks + 1))
        lasts = np.concatenate((breaks, [len(where) - 1]))
        lengths = lasts - firsts + 1
        if where[0] == 0:  # the first run continues the one that ended the previous chunk
            lengths[0] += self._clip_run
        elif self._clip_run:
            self._end_clip_run()
        self._clip_run = 0
        if where[-1] == len(x) - 1:  # the last run may go on in the next chunk
            self._clip_run, lengths = int(lengths[-1]), lengths[:-1]
        self.clip_events += int(np.count_nonzero(lengths >= CLIP_EVENT_SAMPLES))

    def _end_clip_run(self) -> None:
        if self._clip_run >= CLIP_EVENT_SAMPLES:
            self.clip_events += 1
        self._clip_run = 0

    def result(self) -> ChannelSignal:
        self._end_clip_run()
        energy = np.concatenate(self._energy) if self._energy else np.zeros(0)
        peak = np.concatenate(self._peak) if self._peak else np.zeros(0, dtype=np.int32)
        bounds = np.arange(len(energy) + 1, dtype=np.int64) * self.frame
        if len(self._carry):
            t = self._carry.astype(np.float64)
            energy = np.append(energy, t @ t)
            peak = np.append(peak, np.abs(self._carry.astype(np.int32)).max())
            bounds = np.append(bounds, self.samples)
        power = energy / np.maximum(np.diff(bounds), 1) / FULL_SCALE ** 2
        return ChannelSignal(frames=_Frames(bounds=bounds, power=power, peak=peak),
                             samples=self.samples, total=self.total, clipped=self.clipped,
                             clip_events=self.clip_events)


@dataclass(frozen=True, eq=False)
class ChannelSignal:
    """The bounded summary of one channel's samples that every feature is computed from."""
    frames: _Frames
    samples: int
    total: int  # sum of the samples
    clipped: int  # samples with |s| >= CLIP_LEVEL
    clip_events: int  # runs of CLIP_EVENT_SAMPLES or more clipped samples
    speech_prob: np.ndarray | None = None  # per frame, the neural VAD's speech probability


class SpeechPass:
    """The neural VAD's share of a call's analysis: fed the channels' samples in chunks (a second
    pass, once the first has measured each channel's noise floor), it gives the signals their
    speech probabilities.  A no-op for the level gate."""

    def __init__(self, signals: Sequence[ChannelSignal], rate: int, config: VadConfig):
        self.rate = rate
        self.vad = vad.CallVad(rate, [vad.skip_gate_dbfs(s.frames.level_db, config.skip_margin_db)
                                      for s in signals], signals[0].samples) if config.neural else None

    def add(self, columns: Sequence[np.ndarray]) -> None:
        if self.vad is not None:
            self.vad.add(columns)

    def finish(self, signals: Sequence[ChannelSignal]) -> list[ChannelSignal]:
        if self.vad is None:
            return list(signals)
        window, _ = vad.geometry(self.rate)
        return [replace(s, speech_prob=vad.frame_probabilities(p, s.frames.bounds, window))
                for s, p in zip(signals, self.vad.finish(), strict=True)]


def channel_signal(x: np.ndarray, sample_rate: int, frame_ms: int = 20) -> ChannelSignal:
    """The summary of a whole channel held in memory (one chunk)."""
    acc = SignalAccumulator(sample_rate, frame_ms)
    acc.add(x)
    return acc.result()


def _mask(starts: np.ndarray, ends: np.ndarray, n: int) -> np.ndarray:
    """Boolean array of length n, True inside the given disjoint runs."""
    marks = np.zeros(n + 1, dtype=np.int32)
    np.add.at(marks, starts, 1)
    np.add.at(marks, ends, -1)
    return np.cumsum(marks[:-1]) > 0


def _speechruns(active: np.ndarray, bounds: np.ndarray, rate: int, cfg: VadConfig):
    """Frame-index runs of speech: bridge short pauses, then drop short runs."""
    starts, ends = runs(active)
    if len(starts):
        pauses = bounds[starts[1:]] - bounds[ends[:-1]]
        long_pause = pauses * 1000 >= cfg.merge_gap_ms * rate
        starts = starts[np.concatenate(([True], long_pause))]
        ends = ends[np.concatenate((long_pause, [True]))]
        long_run = (bounds[ends] - bounds[starts]) * 1000 >= cfg.min_speech_ms * rate
        starts, ends = starts[long_run], ends[long_run]
    return starts, ends


@dataclass(frozen=True)
class _Channel:
    frames: _Frames
    speech: np.ndarray  # per frame, after bridging and dropping
    seg_frames: tuple[np.ndarray, np.ndarray]  # (first, end) frame index of each segment
    seg_start_ms: np.ndarray
    seg_end_ms: np.ndarray
    non_speech: np.ndarray | None  # per frame: sound the neural VAD rejects (None: energy-v1)
    row: dict  # the per-channel values that need only this channel


def _analyse_channel(signal: ChannelSignal, rate: int, cfg: VadConfig) -> _Channel:
    frames = signal.frames
    level, lengths, n = frames.level_db, frames.lengths, signal.samples
    noise = float(np.percentile(level, cfg.noise_percentile))
    threshold = cfg.floor_dbfs if cfg.noise_margin_db is None else max(
        cfg.floor_dbfs, noise + cfg.noise_margin_db)
    loud = level > threshold
    if cfg.neural:
        if signal.speech_prob is None:
            raise ValueError(f"{cfg.model} needs the channel's speech probabilities (SpeechPass)")
        active = vad.hysteresis(signal.speech_prob, cfg.threshold, cfg.release)
        quiet = signal.speech_prob < cfg.threshold
    else:
        active, quiet = loud, ~loud
    starts, ends = _speechruns(active, frames.bounds, rate, cfg)
    if cfg.neural and cfg.background_db is not None and len(starts):
        own_level = np.percentile(level[_mask(starts, ends, len(level))], 75)
        near = _db(_segment_means(frames, starts, ends)) >= own_level - cfg.background_db
        starts, ends = starts[near], ends[near]
    speech = _mask(starts, ends, len(level))
    non_speech = _non_speech(loud, speech, frames, rate, cfg) if cfg.neural else None
    seg_start_ms = samples_to_ms(frames.bounds[starts], rate)
    seg_end_ms = samples_to_ms(frames.bounds[ends], rate)
    duration_ms = int(samples_to_ms(n, rate))
    speech_level = _db((frames.power * lengths)[speech].sum() / lengths[speech].sum()) \
        if speech.any() else None
    row = {
        "duration_ms": duration_ms,
        "silence_ratio": ratio(int(lengths[quiet].sum()), n),
        "non_speech_ms": None if non_speech is None else _frames_ms(frames, non_speech, rate),
        "segment_count": len(starts),
        "rms_dbfs_mean": _round(speech_level),
        "rms_dbfs_p95": _round(np.percentile(level[speech], 95)) if speech.any() else None,
        "peak_dbfs": _peak_db(frames.peak.max(initial=0)),
        "noise_floor_dbfs": _round(noise),
        "vad_threshold_dbfs": _round(threshold),
        "snr_db": _round(speech_level - noise) if speech_level is not None else None,
        "clipped_ratio": ratio(signal.clipped, n),
        "clip_events": signal.clip_events,
        "dc_offset": round(signal.total / n / FULL_SCALE, 6),
    }
    return _Channel(frames, speech, (starts, ends), seg_start_ms, seg_end_ms, non_speech, row)


def _frames_ms(frames: _Frames, which: np.ndarray, rate: int) -> int:
    return int(samples_to_ms(frames.lengths[which].sum(), rate))


def _non_speech(loud: np.ndarray, speech: np.ndarray, frames: _Frames, rate: int,
                cfg: VadConfig) -> np.ndarray:
    """Sound the VAD rejects: the level gate's segments (frames above the energy-v1 threshold,
    pauses bridged, blips dropped), less every frame within ``merge_gap_ms`` of speech, so the
    onsets and tails of words never count as non-speech."""
    starts, ends = _speechruns(loud, frames.bounds, rate, cfg)
    sound = _mask(starts, ends, len(loud))
    reach = -(-cfg.merge_gap_ms // cfg.frame_ms)
    counts = np.concatenate(([0], np.cumsum(speech)))
    i = np.arange(len(speech))
    near = counts[np.minimum(i + reach + 1, len(speech))] > counts[np.maximum(i - reach, 0)]
    return sound & ~near


def _round(db) -> float | None:
    """dB values to 0.001: stable across the summation orders of different CPUs."""
    return None if db is None else round(float(db), 3) + 0.0  # + 0.0: no "-0.0" in the data


def analyse_call(channels: Sequence[np.ndarray] | np.ndarray, sample_rate: int,
                 roles: Sequence[str | None], *, start_ms: int = 0,
                 gaps: Sequence[Sequence[Gap]] | None = None,
                 config: VadConfig = VadConfig(),
                 contact: ContactTimes | None = None) -> CallAnalysis:
    """Features of one call from its equal-length int16 channels (a list, or an (n, k) array).

    ``roles`` names each channel (``customer`` / ``agent`` / None).  ``gaps`` are each channel's
    zero-filled holes on the same clock as ``start_ms`` (the time of sample 0, e.g. the epoch ms
    of the call's sample grid); their rows come out relative to sample 0 like the segments.
    """
    if isinstance(channels, np.ndarray) and channels.ndim == 2:
        channels = [np.ascontiguousarray(channels[:, c]) for c in range(channels.shape[1])]
    if len({len(x) for x in channels}) != 1 or not len(channels[0]):
        raise ValueError("channels must be non-empty and of equal length (one call's sample grid)")
    signals = [channel_signal(x, sample_rate, config.frame_ms) for x in channels]
    speech = SpeechPass(signals, sample_rate, config)
    speech.add(channels)
    signals = speech.finish(signals)
    return analyse_signals(signals, sample_rate, roles, start_ms=start_ms, gaps=gaps, config=config,
                           contact=contact)


def analyse_signals(signals: Sequence[ChannelSignal], sample_rate: int,
                    roles: Sequence[str | None], *, start_ms: int = 0,
                    gaps: Sequence[Sequence[Gap]] | None = None,
                    config: VadConfig = VadConfig(),
                    contact: ContactTimes | None = None) -> CallAnalysis:
    """Features of one call from the bounded summaries of its equal-length channels.

    ``contact`` is what the Connect CTR says of the call's phases; without it the call is one phase
    (``call``) and its conversation is all of it."""
    if len(signals) != len(roles):
        raise ValueError(f"{len(signals)} channels but {len(roles)} roles")
    if len({s.samples for s in signals}) != 1 or not signals[0].samples:
        raise ValueError("channels must be non-empty and of equal length")
    gaps = gaps if gaps is not None else [()] * len(signals)
    if len(gaps) != len(signals):
        raise ValueError(f"{len(signals)} channels but gaps for {len(gaps)}")
    chans = [_analyse_channel(signal, sample_rate, config) for signal in signals]
    duration_ms = chans[0].row["duration_ms"]
    bounds = chans[0].frames.bounds
    found = _phases(chans, roles, contact, start_ms, duration_ms, sample_rate)
    talk_columns, conversation_call = conversation.measure(
        [ch.speech for ch in chans], bounds, sample_rate, roles, _scope(found, bounds, sample_rate),
        long_silence_ms=config.long_silence_ms, interrupt_lead_ms=config.interrupt_lead_ms,
        interrupt_hold_ms=config.interrupt_hold_ms)

    gap_rows = [{"channel": c, "role": roles[c], "gap": i, "start_ms": a, "end_ms": b,
                 "duration_ms": b - a}
                for c, channel_gaps in enumerate(gaps)
                for i, (a, b) in enumerate(_relative(channel_gaps, start_ms, duration_ms))]
    channel_rows = [{"channel": c, "role": roles[c], **ch.row, **talk_columns[c],
                     "gap_ms": sum(g["duration_ms"] for g in gap_rows if g["channel"] == c),
                     "gap_count": sum(1 for g in gap_rows if g["channel"] == c)}
                    for c, ch in enumerate(chans)]
    segment_rows = [row for c, ch in enumerate(chans)
                    for row in _segment_rows(c, roles[c], ch, found)]
    conv = found.conversation
    call = {
        "duration_ms": duration_ms,
        "channel_count": len(chans),
        "vad_method": config.method,
        **conversation_call,
        "non_speech_ms": (sum(c["non_speech_ms"] for c in channel_rows)
                          if config.neural else None),
        "gap_ms": sum(g["duration_ms"] for g in gap_rows),
        "conversation_start_ms": conv.start_ms if conv else None,
        "conversation_end_ms": conv.end_ms if conv else None,
        **{f"{name}_ms": None if found.single else found.total_ms(name) for name in phases.PHASES},
        "hold_ms": found.hold_ms,
        "hold_count": found.hold_count,
    }
    return CallAnalysis(call=call, channels=channel_rows, segments=segment_rows, gaps=gap_rows,
                        phases=_phase_rows(found, chans, roles, sample_rate))


def _activity(ch: _Channel) -> phases.Activity:
    return phases.Activity(bounds=ch.frames.bounds, speech=ch.speech, sound=ch.non_speech)


def _phases(chans: list[_Channel], roles: Sequence[str | None], contact: ContactTimes | None,
            start_ms: int, duration_ms: int, rate: int) -> phases.CallPhases:
    by_role = {role: _activity(ch) for ch, role in zip(chans, roles, strict=True) if role}
    return phases.call_phases(contact, media_start_ms=start_ms, duration_ms=duration_ms, rate=rate,
                              agent=by_role.get("agent"), customer=by_role.get("customer"))


def _frame_span(p: phases.Phase, bounds: np.ndarray, rate: int) -> tuple[int, int]:
    """The frames [first, end) a phase covers: those starting inside it (a phase that reaches the
    call's end takes its last, shorter frame too)."""
    first, end = np.searchsorted(bounds[:-1], audio.ms_to_samples(np.array([p.start_ms, p.end_ms]), rate))
    if p.end_ms >= samples_to_ms(bounds[-1], rate):
        end = len(bounds) - 1
    return int(first), int(end)


def _scope(found: phases.CallPhases, bounds: np.ndarray, rate: int) -> conversation.Scope | None:
    conv = found.conversation
    if conv is None:
        return None
    first, end = _frame_span(conv, bounds, rate)
    talk = np.zeros(len(bounds) - 1, dtype=bool)
    talk[first:end] = True
    for hold in found.holds:
        a, b = _frame_span(hold, bounds, rate)
        talk[a:b] = False
    return conversation.Scope(first=first, end=end, talk=talk)


def _segment_rows(c: int, role: str | None, ch: _Channel, found: phases.CallPhases) -> list[dict]:
    seg_power = _segment_means(ch.frames, *ch.seg_frames)
    seg_peak = _segment_peaks(ch.frames, *ch.seg_frames)
    return [{"channel": c, "role": role, "segment": i, "start_ms": a, "end_ms": b,
             "duration_ms": b - a, "rms_dbfs": _round(_db(seg_power[i])),
             "peak_dbfs": _peak_db(seg_peak[i]), "phase": phases.phase_of(found, a, b)}
            for i, (a, b) in enumerate(zip(ch.seg_start_ms.tolist(), ch.seg_end_ms.tolist(), strict=True))]


def _phase_rows(found: phases.CallPhases, chans: list[_Channel], roles: Sequence[str | None],
                rate: int) -> list[dict]:
    """One row per phase and hold: its span, what placed it, and each role's talk and non-speech."""
    bounds = chans[0].frames.bounds
    rows = []
    for p in sorted(found.phases + found.holds, key=lambda p: (p.start_ms, p.phase != phases.HOLD)):
        first, end = _frame_span(p, bounds, rate)
        inside = np.zeros(len(bounds) - 1, dtype=bool)
        inside[first:end] = True
        row = {"phase": p.phase, "start_ms": p.start_ms, "end_ms": p.end_ms,
               "duration_ms": p.duration_ms, "boundary": p.boundary}
        for role in ROLES:
            mine = [ch for ch, named in zip(chans, roles, strict=True) if named == role]
            ch = mine[0] if len(mine) == 1 else None
            row[f"talk_ms_{role}"] = None if ch is None else _frames_ms(ch.frames, ch.speech & inside, rate)
            row[f"non_speech_ms_{role}"] = (None if ch is None or ch.non_speech is None
                                            else _frames_ms(ch.frames, ch.non_speech & inside, rate))
        rows.append(row)
    return rows


def _relative(gaps: Sequence[Gap], start_ms: int, duration_ms: int) -> list[tuple[int, int]]:
    """Gaps as (start, end) offsets from sample 0, clipped to the call; empty ones dropped."""
    clipped = ((max(g.start_ms - start_ms, 0), min(g.end_ms - start_ms, duration_ms)) for g in gaps)
    return [(a, b) for a, b in clipped if b > a]


def _segment_means(frames: _Frames, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Mean power of each segment (sample-weighted), from frame-index runs."""
    total = np.concatenate(([0.0], np.cumsum(frames.power * frames.lengths)))
    return (total[ends] - total[starts]) / (frames.bounds[ends] - frames.bounds[starts])


def _segment_peaks(frames: _Frames, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Max |sample| of each segment, from frame-index runs."""
    if not len(starts):
        return np.zeros(0, dtype=np.int32)
    padded = np.append(frames.peak, 0)  # reduceat needs every index, ends included, in range
    return np.maximum.reduceat(padded, np.ravel(np.column_stack((starts, ends))))[::2]
