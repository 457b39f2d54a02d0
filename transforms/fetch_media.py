"""FragmentRange -> StreamAudio: fetch a stream's ranges in order and write each call's audio
tracks to channel files as the bodies stream in.

Ranges are grouped by stream, so one worker reads one stream at a time, in order: KVS allows 5
requests per second per stream and API, and a pooled stream serves its calls one after the other,
so this paces every stream job-wide on any engine while different streams run in parallel.  The
samples go from the parsed body straight to their place in a channel file (``channel_file``):
what leaves this stage is paths, covered ranges and counts, never audio.

Streams are pooled and reused (kvs.md §6.8), so a listed window can hold another call's fragments:
each fragment is kept only if its ContactId / TransactionId tag names this call.  A fragment with
no such tag is kept by time alone, and only on a stream the record named (never on a discovered
one).  A stream never fails on its own: whatever went wrong travels in ``StreamAudio.error`` /
``missing`` to the per-call stage, which decides once per call (so a call lands exactly once).
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
from itertools import groupby

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms.common import KvsDoFn, call_key
from voicelake import layout, progress, storage
from voicelake.analysis.call_audio import grid
from voicelake.audio import coalesce_blocks
from voicelake.media.channel_file import ChannelWriter
from voicelake.media.kvs_client import KvsError
from voicelake.media.mkv_parser import is_audio
from voicelake.model import CallSpec, FragmentRange, StreamAudio

NAMESPACE = "voicelake.media"


def belongs_to_call(fragment, call: CallSpec, *, discovered: bool) -> bool:
    owner = fragment.tags.get(call.tag_name)
    if owner is not None:
        return owner == call.call_id
    if discovered or fragment.producer_ms is None:
        return False
    return call.start_ms <= fragment.producer_ms <= call.end_ms


class _StreamTracks:
    """The channel files of one call's stream, one per audio track, opened as tracks appear."""

    def __init__(self, root: str, call: CallSpec, stream_index: int, stack: contextlib.ExitStack):
        self.folder = layout.channel_files_dir(root, call.date, call.source, call.partition_id, call.call_id)
        self.call, self.stream_index, self.stack = call, stream_index, stack
        self.writers: dict[str, ChannelWriter] = {}
        self.paths: dict[str, str] = {}

    def add(self, track) -> None:
        writer = self.writers.get(track.name)
        if writer is None:
            path = f"{self.folder}/stream-{self.stream_index}-track-{len(self.writers)}.pcm"
            local = self.stack.enter_context(storage.writable(path))
            origin_ms, end_ms = grid(self.call)
            writer = self.writers[track.name] = ChannelWriter(
                local, origin_ms=origin_ms, end_ms=end_ms, sample_rate=track.sample_rate)
            self.paths[track.name] = path
        elif writer.rate != track.sample_rate:
            raise KvsError("mixed_sample_rates", f"track {track.name} changes from {writer.rate} Hz "
                           f"to {track.sample_rate} Hz")
        for t, pcm in coalesce_blocks(track.blocks, track.sample_rate):
            writer.write(t, pcm)

    def close(self) -> tuple:
        pieces = []
        for name, writer in self.writers.items():
            pieces.append((name, dataclasses.replace(writer.close(), path=self.paths[name])))
        return tuple(pieces)


class _FetchStream(KvsDoFn):
    def __init__(self, root: str, **kvs):
        super().__init__(**kvs)
        self.root = root
        self.fragments = Metrics.counter(NAMESPACE, "fragments")
        self.foreign = Metrics.counter(NAMESPACE, "foreign_fragments")
        self.missing = Metrics.counter(NAMESPACE, "missing_fragments")
        self.bytes = Metrics.counter(NAMESPACE, "bytes_fetched")
        self.ranges = progress.counted(Metrics.counter(NAMESPACE, "ranges"))  # fetched
        self.cpu_ms = Metrics.counter(NAMESPACE, "cpu_ms")  # this stage's own CPU, for profiles
        self.throttled = Metrics.counter(NAMESPACE, "throttled_retries")

    def process(self, element):
        _, ranges = element
        ordered = sorted(ranges, key=lambda r: (r.call.start_ms, call_key(r.call), r.stream_index,
                                                r.range_index))
        for _, call_ranges in groupby(ordered, key=lambda r: (call_key(r.call), r.stream_index)):
            call_ranges = list(call_ranges)
            started, throttled = time.thread_time(), self.archive.retry.throttled
            fetched = self.fetch_stream(call_ranges)
            self.throttled.inc(self.throttled_since(throttled))
            self.cpu_ms.inc(int((time.thread_time() - started) * 1000))
            yield call_key(call_ranges[0].call), fetched

    def fetch_stream(self, ranges: list[FragmentRange]) -> StreamAudio:
        first = ranges[0]
        call = first.call
        named = any(s.stream_arn == first.stream_arn for s in call.streams)
        kept = foreign = bytes_read = fragment_bytes = 0
        missing: dict[str, str] = {}
        error = None
        with contextlib.ExitStack() as stack:
            tracks = _StreamTracks(self.root, call, first.stream_index, stack)
            try:
                for rng in ranges:
                    fetch = self.archive.fetch_fragments(rng.stream_arn, rng.fragments)
                    try:
                        for fragment in fetch:
                            fragment_bytes += fragment.size
                            if not belongs_to_call(fragment, call, discovered=not named):
                                foreign += 1
                                continue
                            kept += 1
                            for track in fragment.tracks.values():
                                if is_audio(track):
                                    tracks.add(track)
                    finally:
                        bytes_read += fetch.bytes_read
                        missing.update(fetch.missing)
                        self.ranges.inc()
            except KvsError as exc:
                error = (exc.reason, exc.detail)
            pieces = tracks.close()
        self.fragments.inc(kept)
        self.foreign.inc(foreign)
        self.missing.inc(len(missing))
        self.bytes.inc(bytes_read)
        return StreamAudio(call=call, stream_index=first.stream_index, stream_arn=first.stream_arn,
                           channel=first.channel, tracks=pieces, fragments_kept=kept,
                           fragments_foreign=foreign,
                           missing=tuple(sorted(missing.items(), key=lambda m: int(m[0]))),
                           bytes_read=bytes_read, fragment_bytes=fragment_bytes, error=error)


@beam.typehints.with_input_types(FragmentRange)
@beam.typehints.with_output_types(tuple[str, StreamAudio])
class FetchStreams(beam.PTransform):
    """FragmentRange -> (call key, StreamAudio), one per stream of each call."""

    def __init__(self, root: str, *, endpoint_url=None, region=None, max_attempts=6, retry_budget_s=1800.0):
        super().__init__()
        self.fn = _FetchStream(root, endpoint_url=endpoint_url, region=region, max_attempts=max_attempts,
                               retry_budget_s=retry_budget_s)

    def expand(self, ranges):
        return (
            ranges
            | "ByStream" >> beam.Map(lambda r: (r.stream_arn, r))
            | "GroupByStream" >> beam.GroupByKey()
            | "GetMediaForFragmentList" >> beam.ParDo(self.fn).with_output_types(tuple[str, StreamAudio])
        )
