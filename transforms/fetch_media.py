"""FragmentRange -> RangeAudio: fetch one GetMediaForFragmentList request and keep the call's audio.

Streams are pooled and reused (kvs.md §6.8), so a listed window can hold another call's fragments:
each fragment is kept only if its ContactId / TransactionId tag names this call.  A fragment with
no such tag is kept by time alone, and only on a stream the record named (never on a discovered
one).  A range never fails on its own: whatever went wrong travels in ``RangeAudio.error`` /
``missing`` to the per-call stage, which decides once per call (so a call lands exactly once).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import apache_beam as beam
from apache_beam.metrics import Metrics

from voicelake.audio import coalesce_blocks
from voicelake.kvs_client import KvsError
from voicelake.model import CallSpec
from transforms.common import KvsDoFn, call_key
from transforms.fragment_ranges import FragmentRange

NAMESPACE = "voicelake.media"


@dataclass
class RangeAudio:
    call: CallSpec
    stream_index: int
    stream_arn: str
    channel: int | None
    range_index: int
    tracks: dict = field(default_factory=dict)  # track name -> [(absolute ms, s16le bytes)]
    sample_rates: dict = field(default_factory=dict)  # track name -> Hz
    fragments_kept: int = 0
    fragments_foreign: int = 0
    missing: dict = field(default_factory=dict)  # fragment number -> reason
    bytes_read: int = 0
    error: tuple | None = None  # (reason, detail) when the range could not be fetched


def belongs_to_call(fragment, call: CallSpec, *, discovered: bool) -> bool:
    owner = fragment.tags.get(call.tag_name)
    if owner is not None:
        return owner == call.call_id
    if discovered or fragment.producer_ms is None:
        return False
    return call.start_ms <= fragment.producer_ms <= call.end_ms


class _FetchRange(KvsDoFn):
    def __init__(self, **kvs):
        super().__init__(**kvs)
        self.fragments = Metrics.counter(NAMESPACE, "fragments")
        self.foreign = Metrics.counter(NAMESPACE, "foreign_fragments")
        self.missing = Metrics.counter(NAMESPACE, "missing_fragments")
        self.bytes = Metrics.counter(NAMESPACE, "bytes_fetched")

    def process(self, rng: FragmentRange):
        audio = RangeAudio(call=rng.call, stream_index=rng.stream_index, stream_arn=rng.stream_arn,
                           channel=rng.channel, range_index=rng.range_index)
        span_named = any(s.stream_arn == rng.stream_arn for s in rng.call.streams)
        try:
            result = self.archive.get_fragments(rng.stream_arn, [f.number for f in rng.fragments])
        except KvsError as exc:
            audio.error = (exc.reason, exc.detail)
            yield call_key(rng.call), audio
            return
        audio.bytes_read, audio.missing = result.bytes_read, dict(result.missing)
        for number in sorted(result.fragments, key=int):
            fragment = result.fragments[number]
            if not belongs_to_call(fragment, rng.call, discovered=not span_named):
                audio.fragments_foreign += 1
                continue
            audio.fragments_kept += 1
            for name, track in fragment.tracks.items():
                audio.tracks.setdefault(name, []).extend(coalesce_blocks(track.blocks, track.sample_rate))
                audio.sample_rates[name] = track.sample_rate
        self.fragments.inc(audio.fragments_kept)
        self.foreign.inc(audio.fragments_foreign)
        self.missing.inc(len(audio.missing))
        self.bytes.inc(audio.bytes_read)
        yield call_key(rng.call), audio


class FetchRanges(beam.PTransform):
    """FragmentRange -> (call key, RangeAudio)."""

    def __init__(self, *, endpoint_url=None, region=None, max_attempts=6):
        super().__init__()
        self.fn = _FetchRange(endpoint_url=endpoint_url, region=region, max_attempts=max_attempts)

    def expand(self, ranges):
        return ranges | "GetMediaForFragmentList" >> beam.ParDo(self.fn)
