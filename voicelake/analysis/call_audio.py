"""A call from its streams' channel files: which file is which channel, the call window, the gaps,
the features and the WAVs, streaming through the samples in chunks (never a whole call in memory).

Channel convention: 0 = customer, 1 = agent.  Connect: AUDIO_FROM_CUSTOMER (or the legacy
``Track_audio/L16``) is channel 0, AUDIO_TO_CUSTOMER (agent, prompts) channel 1.  Chime: the
channel each leg was given from ``isCaller`` and ``direction``; legs found by scanning a Voice
Connector's streams (no streaming events) are ordered by their first audio, the caller first, and
the caller is taken to be the customer.

The window: the call's audio kept inside its record's window padded by WINDOW_SLACK_MS (record
times have second precision; a Connect contact's by CONNECT_WINDOW_SLACK_MS, for its clock
skew).  It starts at the first sample of any channel; it ends at the padded record end when audio
was cut there, else on the last sample of the longest channel, and shorter channels are padded
with silence that is no gap.
"""
from __future__ import annotations

import wave
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from voicelake import audio
from voicelake.analysis import features, vad
from voicelake.analysis.conversation import ROLES
from voicelake.audio import Gap, ms_to_samples, samples_to_ms
from voicelake.media.channel_file import ChannelPiece, ChannelReader, Coverage
from voicelake.model import CHIME, CONNECT, CallSpec, ContactTimes, StreamAudio

WINDOW_SLACK_MS = 1000
# A Connect recording's times are on Connect's clock, whole seconds, and the producer's clock may be
# seconds off it; the ContactId tag cuts a contact's audio exactly, so its grid can afford to be wide.
CONNECT_WINDOW_SLACK_MS = 5000
CUSTOMER_TRACKS = ("AUDIO_FROM_CUSTOMER", "Track_audio/L16", "")
AGENT_TRACKS = ("AUDIO_TO_CUSTOMER",)
CHUNK_SECONDS = 30  # samples are read, analysed and written this much at a time
ML_PEAK_DBFS = -1.0


class CallProblem(Exception):
    def __init__(self, reason: str, detail: str, stage: str = "audio"):
        super().__init__(detail)
        self.reason, self.detail, self.stage = reason, detail, stage


def grid(call: CallSpec) -> tuple[int, int]:
    """The epoch-ms span every channel file of the call is written on: the padded record window."""
    slack = CONNECT_WINDOW_SLACK_MS if call.source == CONNECT else WINDOW_SLACK_MS
    return call.start_ms - slack, call.end_ms + slack


def connect_channel(track_name: str) -> int | None:
    if track_name in CUSTOMER_TRACKS:
        return 0
    if track_name in AGENT_TRACKS:
        return 1
    return None


def channel_pieces(call: CallSpec, streams: Sequence[StreamAudio]
                   ) -> tuple[dict[int, list[ChannelPiece]], dict[int, str], set[int]]:
    """Channel files per output channel, the stream of each channel, and the channels that are
    whole legs (Chime: a leg starting late or ending early is no dropout)."""
    pieces: dict[int, list[ChannelPiece]] = defaultdict(list)
    arns: dict[int, str] = {}
    streams = sorted(streams, key=lambda s: s.stream_index)
    if call.source == CONNECT:
        for s in streams:
            for name, piece in s.tracks:
                channel = connect_channel(name)
                if channel is not None and piece.ranges:
                    pieces[channel].append(piece)
                    arns.setdefault(channel, s.stream_arn)
        return pieces, arns, set()
    legs = [s for s in streams if any(piece.ranges for _, piece in s.tracks)]
    mapping = {s.stream_index: s.channel for s in legs if s.channel is not None}
    free = iter(c for c in range(len(legs) + 2) if c not in mapping.values())
    discovered = [s for s in legs if s.channel is None]
    for s in sorted(discovered, key=lambda s: min(p.first for _, p in s.tracks if p.ranges)):
        mapping[s.stream_index] = next(free)
    for s in legs:
        channel = mapping[s.stream_index]
        pieces[channel] += [piece for _, piece in s.tracks if piece.ranges]
        arns.setdefault(channel, s.stream_arn)
    return pieces, arns, set(pieces)


def channel_roles(call: CallSpec, count: int) -> list[str | None]:
    """Connect and discovered Chime legs follow the channel convention; Chime legs from streaming
    events carry their own role (None where the records cannot tell)."""
    named = {s.channel: s.role for s in call.streams if s.channel is not None}
    if call.source == CHIME and named:
        return [named.get(n) for n in range(count)]
    return [ROLES[n] if n < len(ROLES) else None for n in range(count)]


@dataclass(frozen=True)
class CallWindow:
    """Where the call is on the grid: sample 0 of the call is grid sample ``shift``."""
    start_ms: int
    end_ms: int
    shift: int
    samples: int
    cut_at_end: bool  # audio went on past the padded record end and was cut there


def call_window(call: CallSpec, pieces: dict[int, list[ChannelPiece]], rate: int) -> CallWindow:
    covered = [p for ps in pieces.values() for p in ps if p.ranges]
    if not covered:
        raise CallProblem("no_audio", "no audio of the call inside its record's time window")
    origin, _ = grid(call)
    first = min(p.first for p in covered)
    start_ms = origin + int(samples_to_ms(first, rate))
    shift = int(ms_to_samples(start_ms - origin, rate))
    cut = any(p.cut_at_end for p in covered)
    end_sample = max(p.last for p in covered)
    n = end_sample - shift
    if n <= 0:
        raise CallProblem("no_audio", "no audio of the call inside its record's time window")
    return CallWindow(start_ms=start_ms, end_ms=start_ms + -(-n * 1000 // rate), shift=shift,
                      samples=n, cut_at_end=cut)


def channel_gaps(coverage: Coverage, window: CallWindow, extent: int, rate: int, *,
                 inner_only: bool, min_gap_ms: int = 1) -> tuple[Gap, ...]:
    """Holes (longer than ``min_gap_ms``) in a channel's first ``extent`` samples, in epoch ms;
    ``inner_only`` keeps only holes with audio on both sides (a leg that starts late or ends
    early, or a channel never streamed, is no dropout)."""
    lo, hi = window.shift, window.shift + extent
    holes = Coverage([(lo, hi)]).minus(coverage)
    out = []
    for a, b in holes:
        if (b - a) * 1000 <= min_gap_ms * rate:
            continue
        if inner_only and (a == lo or b == hi):
            continue
        out.append(Gap(window.start_ms + int(samples_to_ms(a - lo, rate)),
                       window.start_ms + int(samples_to_ms(b - lo, rate))))
    return tuple(out)


@dataclass(frozen=True)
class CallAudio:
    """The decided shape of a call's audio, ready to stream through."""
    window: CallWindow
    rate: int
    readers: list  # per channel: a list of (path, ranges) pieces, empty for a silent channel
    gaps: list[tuple[Gap, ...]]
    roles: list[str | None]
    arns: dict[int, str]


def plan_call_audio(call: CallSpec, streams: Sequence[StreamAudio]) -> CallAudio:
    pieces, arns, legs = channel_pieces(call, streams)
    if not pieces:
        raise CallProblem("no_audio", "no fragment of the call's streams carried its "
                          f"{call.tag_name} tag")
    rates = {p.sample_rate for ps in pieces.values() for p in ps}
    if len(rates) > 1:
        raise CallProblem("mixed_sample_rates", f"tracks disagree on the sample rate: {sorted(rates)}")
    rate = rates.pop()
    window = call_window(call, pieces, rate)
    count = max(2, max(pieces) + 1)
    gaps = []
    for n in range(count):
        coverage = Coverage(r for p in pieces.get(n, ()) for r in p.ranges)
        if not len(coverage):  # never streamed: silence over the call, no dropout
            gaps.append(())
            continue
        extent = window.samples if window.cut_at_end else min(coverage.ends[-1] - window.shift,
                                                              window.samples)
        gaps.append(channel_gaps(coverage, window, extent, rate, inner_only=n in legs))
    readers = [[(p.path, p.ranges) for p in pieces.get(n, ())] for n in range(count)]
    return CallAudio(window=window, rate=rate, readers=readers, gaps=gaps,
                     roles=channel_roles(call, count), arns=arns)


def _chunks(total: int, size: int):
    for offset in range(0, total, size):
        yield offset, min(size, total - offset)


def analyse_and_write(plan: CallAudio, *, local: Callable[[str], str], ml_wav: str,
                      target_rate: int, raw_wav: str | None = None,
                      vad_config: features.VadConfig = features.VadConfig(),
                      contact: ContactTimes | None = None) -> features.CallAnalysis:
    """Features of the call and its WAV files, in two streaming passes over the channel files.

    Pass 1 reduces every channel to its bounded feature state (and writes the raw WAV); pass 2
    runs the neural VAD (which needs pass 1's noise floors) and resamples, removes each channel's
    DC and scales it to ML_PEAK_DBFS of its source peak, into the ML WAV.  ``local`` maps a
    channel file's path to a readable local file.
    """
    window, rate = plan.window, plan.rate
    chunk = CHUNK_SECONDS * rate
    readers = [ChannelReader([(local(path), ranges) for path, ranges in pieces])
               for pieces in plan.readers]
    try:
        accumulators = [features.SignalAccumulator(rate) for _ in readers]
        raw = _wav_writer(raw_wav, len(readers), rate, window.samples) if raw_wav else None
        for offset, n in _chunks(window.samples, chunk):
            columns = [r.read(window.shift + offset, n) for r in readers]
            for acc, x in zip(accumulators, columns, strict=True):
                acc.add(x)
            if raw:
                raw.writeframesraw(np.column_stack(columns).astype("<i2", copy=False).tobytes())
        if raw:
            raw.close()
        signals = [acc.result() for acc in accumulators]
        try:
            speech = features.SpeechPass(signals, rate, vad_config)
        except vad.UnsupportedRate as e:
            raise CallProblem("unsupported_sample_rate", str(e)) from None
        means = [acc.total / acc.samples / audio.FULL_SCALE for acc in accumulators]
        peaks = [max(acc.highest / audio.FULL_SCALE - m, m - acc.lowest / audio.FULL_SCALE)
                 for acc, m in zip(accumulators, means, strict=True)]
        gains = [10.0 ** (ML_PEAK_DBFS / 20.0) / p if p > 0 else 1.0 for p in peaks]
        resamplers = [audio.Resampler(rate, target_rate) for _ in readers]
        ml = _wav_writer(ml_wav, len(readers), target_rate, None)
        pending = [np.zeros(0, np.int16) for _ in readers]
        chunks = list(_chunks(window.samples, chunk))
        for index, (offset, n) in enumerate(chunks):
            last = index == len(chunks) - 1
            columns = [r.read(window.shift + offset, n) for r in readers]
            speech.add(columns)
            for c, x in enumerate(columns):
                y = audio.to_float(x)
                y -= np.float32(means[c])
                y = resamplers[c].resample(y, last=last)
                y *= np.float32(gains[c])
                pending[c] = np.concatenate((pending[c], audio.to_int16(y)))
            ready = min(len(p) for p in pending)
            ml.writeframesraw(np.column_stack([p[:ready] for p in pending]).astype("<i2").tobytes())
            pending = [p[ready:] for p in pending]
        ml.close()
    finally:
        for r in readers:
            r.close()
    return features.analyse_signals(speech.finish(signals), rate, plan.roles,
                                    start_ms=window.start_ms, gaps=plan.gaps, config=vad_config,
                                    contact=contact)


def _wav_writer(path: str, channels: int, rate: int, frames: int | None):
    """A 16-bit PCM WAV written frame block by frame block; the header's length is patched on
    close when it was not known up front (the file is local and seekable)."""
    w = wave.open(path, "wb")
    w.setnchannels(channels)
    w.setsampwidth(2)
    w.setframerate(rate)
    if frames is not None:
        w.setnframes(frames)
    return w
