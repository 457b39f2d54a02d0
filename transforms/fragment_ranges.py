"""CallSpec -> FragmentRange: which fragments of which streams hold a call, in requests of <= 1000.

ListFragments selects by fragment *start*, so the fragment holding the call's first instant starts
before the window: the window is padded by the longest fragment KVS allows, and the record's own
start/stop fragment numbers bound the list where the record has them (kvs.md §6.7).  The ranges
go on to the fetch stage, which groups them by stream.
"""
from __future__ import annotations

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms.common import FAILURES, KvsDoFn, call_failure
from voicelake import progress
from voicelake.media.kvs_client import KvsError
from voicelake.model import CallSpec, Failure, FragmentList, FragmentRange, ListedFragment, StreamSpan

NAMESPACE = "voicelake.fragments"


def clip_to_record(fragments: list[ListedFragment], span: StreamSpan) -> list[ListedFragment]:
    """Keep fragments between the record's start and stop fragment numbers, where it has them,
    and ask for those two even when the listing lacks them (as VMX does): the start fragment can
    begin before the padded window, and one that expired must show up as missing, not vanish."""
    low = int(span.start_fragment) if span.start_fragment else None
    high = int(span.stop_fragment) if span.stop_fragment else None
    kept = {f.number: f for f in fragments
            if (low is None or int(f.number) >= low) and (high is None or int(f.number) <= high)}
    for number in (span.start_fragment, span.stop_fragment):
        if number and number not in kept:
            kept[number] = ListedFragment(number=number, producer_ms=span.start_ms,
                                          server_ms=span.start_ms, duration_ms=0, size=0)
    return sorted(kept.values(), key=lambda f: int(f.number))


def split_ranges(fragments: list[ListedFragment], size: int) -> list[tuple[ListedFragment, ...]]:
    if not 1 <= size <= 1000:
        raise ValueError("fragments per range must be 1-1000")
    return [tuple(fragments[i:i + size]) for i in range(0, len(fragments), size)]


class _PlanRanges(KvsDoFn):
    def __init__(self, *, selector, pad_ms, per_range, **kvs):
        super().__init__(**kvs)
        self.selector, self.pad_ms, self.per_range = selector, pad_ms, per_range
        self.listed = Metrics.counter(NAMESPACE, "fragments_listed")
        self.ranges = progress.counted(Metrics.counter(NAMESPACE, "ranges"))  # planned
        self.throttled = Metrics.counter(NAMESPACE, "throttled_retries")

    def _streams(self, call: CallSpec):
        """(stream index, arn, span) for every stream to read, discovering Chime pools."""
        index = 0
        for span in call.streams:
            arns = [span.stream_arn] if span.stream_arn else self.archive.stream_arns(span.discover_prefix)
            for arn in arns:
                yield index, arn, span
                index += 1

    def process(self, call: CallSpec):
        throttled = self.archive.retry.throttled
        try:
            yield from self.plan(call)
        finally:
            self.throttled.inc(self.throttled_since(throttled))

    def plan(self, call: CallSpec):
        try:
            planned = []
            for index, arn, span in self._streams(call):
                listed = self.archive.list_fragments(
                    arn, span.start_ms - self.pad_ms, span.end_ms + self.pad_ms, self.selector)
                listed = clip_to_record(listed, span)
                self.listed.inc(len(listed))
                planned += [(index, arn, span, chunk) for chunk in split_ranges(listed, self.per_range)]
        except KvsError as exc:
            yield beam.pvalue.TaggedOutput(FAILURES, call_failure(call, "fragments", exc.reason, exc.detail))
            return
        if not planned:
            yield beam.pvalue.TaggedOutput(FAILURES, call_failure(
                call, "fragments", "no_fragments", "ListFragments found no fragment in the call window"))
            return
        for range_index, (index, arn, span, chunk) in enumerate(planned):
            self.ranges.inc()
            yield FragmentRange(call=call, stream_index=index, stream_arn=arn, channel=span.channel,
                                fragments=FragmentList.of(chunk), range_index=range_index)


@beam.typehints.with_input_types(CallSpec)
class PlanFragmentRanges(beam.PTransform):
    """CallSpec -> FragmentRange (main output) and Failure (tag ``failures``)."""

    def __init__(self, *, endpoint_url=None, region=None, selector="SERVER_TIMESTAMP",
                 pad_ms=10_000, fragments_per_range=1000, max_attempts=6, retry_budget_s=1800.0):
        super().__init__()
        self.fn = _PlanRanges(endpoint_url=endpoint_url, region=region, selector=selector,
                              pad_ms=pad_ms, per_range=fragments_per_range, max_attempts=max_attempts,
                              retry_budget_s=retry_budget_s)

    def expand(self, calls):
        planned = calls | "ListFragments" >> beam.ParDo(self.fn).with_output_types(
            FragmentRange, failures=Failure).with_outputs(FAILURES, main="ranges")
        return planned.ranges, planned[FAILURES]
