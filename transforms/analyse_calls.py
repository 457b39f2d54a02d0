"""(call key, [RangeAudio]) -> the call's rows, its WAV, or one Failure.

This is the one place that sees a whole call, so it decides once per call whether the call lands
in ``calls`` or in ``failures``.  The audio steps are the pure functions of ``voicelake.audio`` and
``voicelake.features``; this DoFn maps tracks and legs to channels, writes the WAV and adds identity.

Channel convention: 0 = customer, 1 = agent.  Connect: AUDIO_FROM_CUSTOMER (or the legacy
``Track_audio/L16``) is channel 0, AUDIO_TO_CUSTOMER (agent, prompts) channel 1.  Chime: the
channel each leg was given from ``isCaller`` and ``direction``; legs found by scanning a Voice
Connector's streams (no streaming events) are ordered by their first audio, the caller first, and
the caller is taken to be the customer.
"""
from __future__ import annotations

from collections import defaultdict

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics

from voicelake import audio, features
from voicelake.model import CHIME, CONNECT, CallSpec
from transforms.common import FAILURES, call_failure
from transforms.lake_sink import join, wav_relpath, write_bytes

NAMESPACE = "voicelake.analyse"
WINDOW_SLACK_MS = 1000  # record times have second precision (CTRs, SDRs)
CUSTOMER_TRACKS = ("AUDIO_FROM_CUSTOMER", "Track_audio/L16", "")
AGENT_TRACKS = ("AUDIO_TO_CUSTOMER",)
ROLES = ("customer", "agent")
WAVS = "wavs"


class CallProblem(Exception):
    def __init__(self, reason: str, detail: str, stage: str = "audio"):
        super().__init__(detail)
        self.reason, self.detail, self.stage = reason, detail, stage


def connect_channel(track_name: str) -> int | None:
    if track_name in CUSTOMER_TRACKS:
        return 0
    if track_name in AGENT_TRACKS:
        return 1
    return None


def channel_blocks(call: CallSpec, ranges) -> tuple[dict[int, list], dict[int, str], set[int]]:
    """Blocks per output channel, the stream of each channel, and the channels that are whole legs."""
    blocks: dict[int, list] = defaultdict(list)
    streams: dict[int, str] = {}
    if call.source == CONNECT:
        for r in ranges:
            for name, track_blocks in r.tracks.items():
                channel = connect_channel(name)
                if channel is not None:
                    blocks[channel].extend(track_blocks)
                    streams.setdefault(channel, r.stream_arn)
        return blocks, streams, set()
    by_stream: dict[int, list] = defaultdict(list)
    named: dict[int, int | None] = {}
    for r in ranges:
        for track_blocks in r.tracks.values():
            by_stream[r.stream_index].extend(track_blocks)
        named[r.stream_index] = r.channel
        streams.setdefault(r.stream_index, r.stream_arn)
    legs = [i for i in by_stream if by_stream[i]]
    mapping = {i: named[i] for i in legs if named[i] is not None}
    free = iter(c for c in range(len(legs) + 2) if c not in mapping.values())
    for i in sorted((i for i in legs if named[i] is None), key=lambda i: min(t for t, _ in by_stream[i])):
        mapping[i] = next(free)
    for i in legs:
        blocks[mapping[i]].extend(by_stream[i])
    return blocks, {mapping[i]: streams[i] for i in legs}, set(blocks)


def channel_roles(call: CallSpec, count: int) -> list[str | None]:
    """Connect and discovered Chime legs follow the channel convention; Chime legs from streaming
    events carry their own role (None where the records cannot tell)."""
    named = {s.channel: s.role for s in call.streams if s.channel is not None}
    if call.source == CHIME and named:
        return [named.get(n) for n in range(count)]
    return [ROLES[n] if n < len(ROLES) else None for n in range(count)]


def call_window(call: CallSpec, blocks: dict[int, list], rate: int) -> tuple[int, int | None]:
    """Where the call's audio is: its blocks, kept inside the record's (slightly padded) window.

    The end is None when the audio ends inside the window: then each channel ends on its last
    sample exactly, rather than on a whole millisecond.
    """
    first = min(t for bl in blocks.values() for t, _ in bl)
    last = max(t + len(pcm) // 2 * 1000 / rate for bl in blocks.values() for t, pcm in bl)
    start = max(first, call.start_ms - WINDOW_SLACK_MS)
    window_end = call.end_ms + WINDOW_SLACK_MS
    if window_end <= start:
        raise CallProblem("no_audio", "no audio of the call inside its record's time window")
    return int(start), (window_end if last > window_end else None)


def without_edges(channel: audio.AssembledChannel) -> tuple:
    """A leg that starts after (or ends before) the call is not a dropout: keep inner gaps only."""
    return tuple(g for g in channel.gaps if channel.start_ms < g.start_ms and g.end_ms < channel.end_ms)


class _AnalyseCall(beam.DoFn):
    def __init__(self, root: str, *, target_sample_rate: int, allow_missing_fragments: bool,
                 write_raw_channels: bool):
        self.root, self.target = root, target_sample_rate
        self.allow_missing, self.write_raw = allow_missing_fragments, write_raw_channels
        self.calls = Metrics.counter(NAMESPACE, "calls")
        self.audio_ms = Metrics.counter(NAMESPACE, "audio_ms")

    def setup(self):
        # Pay numpy/soxr's first-call costs once per worker, not inside the first call.
        audio.normalise(np.zeros(800, np.int16), 8000, self.target)

    def process(self, element):
        _, ranges = element
        ranges = sorted(ranges, key=lambda r: (r.stream_index, r.range_index))
        call = ranges[0].call
        try:
            rows, paths = self.analyse(call, ranges)
        except CallProblem as problem:
            yield beam.pvalue.TaggedOutput(FAILURES, call_failure(
                call, problem.stage, problem.reason, problem.detail))
            return
        self.calls.inc()
        for row in rows:
            yield row
        for path in paths:
            yield beam.pvalue.TaggedOutput(WAVS, path)

    def analyse(self, call: CallSpec, ranges):
        errors = [r.error for r in ranges if r.error]
        if errors:
            raise CallProblem(errors[0][0], errors[0][1], stage="media")
        missing = {n: why for r in ranges for n, why in r.missing.items()}
        if missing and not self.allow_missing:
            first = sorted(missing, key=int)[0]
            raise CallProblem("fragment_not_found", f"{len(missing)} fragment(s) could not be read, "
                              f"e.g. {first}: {missing[first]}", stage="media")
        blocks, streams, legs = channel_blocks(call, ranges)
        if not blocks:
            raise CallProblem("no_audio", "no fragment of the call's streams carried its "
                              f"{call.tag_name} tag")
        rates = {rate for r in ranges for rate in r.sample_rates.values()}
        if len(rates) > 1:
            raise CallProblem("mixed_sample_rates", f"tracks disagree on the sample rate: {sorted(rates)}")
        rate = rates.pop() if rates else 8000
        start, end = call_window(call, blocks, rate)
        numbers = range(max(2, max(blocks) + 1))
        assembled = {n: audio.assemble_channel(blocks[n], start_ms=start, end_ms=end, sample_rate=rate)
                     for n in numbers if blocks.get(n)}
        end = start + -(-max(len(c.samples) for c in assembled.values()) * 1000 // rate)
        # A channel with no audio at all (one direction not streamed) spans the call as silence;
        # like a leg that starts late, that is not a dropout, so it reports no gaps.
        absent = {n for n in numbers if n not in assembled}
        channels = [assembled.get(n) or audio.assemble_channel([], start_ms=start, end_ms=end,
                                                              sample_rate=rate) for n in numbers]
        gaps = [without_edges(c) if n in legs | absent else c.gaps for n, c in enumerate(channels)]
        stereo = audio.align_channels(channels)
        roles = channel_roles(call, stereo.shape[1])
        analysis = features.analyse_call(stereo, rate, roles, start_ms=start, gaps=gaps)
        relative = wav_relpath(call.date, call.partition_id, call.call_id)
        paths = [join(self.root, relative)]
        write_bytes(paths[0], audio.ml_wav_bytes(stereo, rate, self.target))
        if self.write_raw:
            paths.append(join(self.root, wav_relpath(call.date, call.partition_id, call.call_id, ".8k")))
            write_bytes(paths[1], audio.wav_bytes(stereo, rate))
        self.audio_ms.inc(analysis.call["duration_ms"])
        return self.rows(call, ranges, analysis, streams, rate, start, end, relative, missing), paths

    def rows(self, call, ranges, analysis, streams, rate, start, end, relative, missing):
        identity = {"call_id": call.call_id, "source": call.source}
        partition = (call.date, call.partition_id)
        channel_map = ",".join(f"{c['channel']}={c['role']}" for c in analysis.channels)
        gap_total = sum(c["gap_ms"] for c in analysis.channels)
        call_row = {
            **identity, **analysis.call, "start_time": start, "end_time": end,
            "channel_map": channel_map, "sample_rate": rate, "target_sample_rate": self.target,
            "wav_path": relative, "source_key": call.source_key,
            "fragments": sum(r.fragments_kept for r in ranges),
            "missing_fragments": len(missing), "partial": bool(missing or gap_total),
            "bytes_fetched": sum(r.bytes_read for r in ranges),
        }
        out = [("calls", *partition, call_row)]
        out += [("channels", *partition, {**identity, **c, "stream_arn": streams.get(c["channel"])})
                for c in analysis.channels]
        out += [("segments", *partition, {**identity, **s}) for s in analysis.segments]
        out += [("gaps", *partition, {**identity, **g}) for g in analysis.gaps]
        return out


class AnalyseCalls(beam.PTransform):
    """(call key, RangeAudio) -> rows (main), written WAV paths (``wavs``), Failures (``failures``)."""

    def __init__(self, root: str, *, target_sample_rate=16000, allow_missing_fragments=False,
                 write_raw_channels=False):
        super().__init__()
        self.fn = _AnalyseCall(root, target_sample_rate=target_sample_rate,
                               allow_missing_fragments=allow_missing_fragments,
                               write_raw_channels=write_raw_channels)

    def expand(self, keyed_ranges):
        out = (
            keyed_ranges
            | "GroupByCall" >> beam.GroupByKey()
            | "AnalyseCall" >> beam.ParDo(self.fn).with_outputs(FAILURES, WAVS, main="rows")
        )
        return out.rows, out[WAVS], out[FAILURES]
