"""(call key, StreamAudio) -> the call's WAVs and row shards with a ``CallRows`` note, or one Failure.

This is the one place that sees a whole call, so it decides once per call whether the call lands
in ``calls`` or in ``failures``.  What it receives is small (the channel files' paths and covered
ranges); the samples stream from those files through the feature state and into the WAVs in
chunks (``voicelake.analysis.call_audio``), so a worker's memory does not grow with the call's length.
Its rows go to row shards beside the lake (``voicelake.lake_files``) and only a note of them goes
on, so nothing downstream holds them either.
"""
from __future__ import annotations

import contextlib
import time

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms.common import FAILURES, call_failure
from voicelake import lake_files, layout, progress, storage
from voicelake.analysis import call_audio, features
from voicelake.analysis import vad as vad_model
from voicelake.analysis.call_audio import CallProblem
from voicelake.media.kvs_client import EXPIRED
from voicelake.model import CallRows, CallSpec, Failure, StreamAudio

NAMESPACE = "voicelake.analyse"
# When a call's streams failed for several reasons, the cause is named, not the weather met on
# the way: expired media is the reason even if a stream was also throttled.
REASON_PRIORITY = ("outside_retention", "stream_not_found", "not_authorized", "corrupt_media",
                   "mixed_sample_rates", "kvs_error", "throttled", "kvs_unavailable")


def call_reason(errors: list[tuple[str, str]]) -> tuple[str, str]:
    """The (reason, detail) that names a call's failure among its streams' errors."""
    rank = {reason: i for i, reason in enumerate(REASON_PRIORITY)}
    return min(errors, key=lambda e: (rank.get(e[0], len(rank)), e))


def missing_reason(missing: dict[str, str]) -> tuple[str, str]:
    """(reason, detail) of a call with unreadable fragments: outside_retention when retention had
    taken any of them by the time KVS was asked (the operator ran too late), else
    fragment_not_found (KVS lost media inside retention)."""
    expired = sorted((n for n, why in missing.items() if why.startswith(EXPIRED)), key=int)
    if expired:
        others = len(missing) - len(expired)
        return EXPIRED, (f"{len(expired)} fragment(s) past the stream's retention when fetched, e.g. "
                         f"{expired[0]}: {missing[expired[0]]}"
                         + (f"; {others} more could not be read" if others else ""))
    first = sorted(missing, key=int)[0]
    return "fragment_not_found", (f"{len(missing)} fragment(s) could not be read, "
                                  f"e.g. {first}: {missing[first]}")


def call_rows(call: CallSpec, streams, plan, analysis, *, target_rate: int, wav_path: str,
              missing: dict) -> dict[str, list[dict]]:
    """table -> rows, for the call, its channels, segments and gaps."""
    identity = {"call_id": call.call_id, "source": call.source}
    channel_map = ",".join(f"{c['channel']}={c['role']}" for c in analysis.channels)
    gap_total = sum(c["gap_ms"] for c in analysis.channels)
    call_row = {
        **identity, **analysis.call, "start_time": plan.window.start_ms, "end_time": plan.window.end_ms,
        "channel_map": channel_map, "sample_rate": plan.rate, "target_sample_rate": target_rate,
        "wav_path": wav_path, "source_key": call.source_key,
        "fragments": sum(s.fragments_kept for s in streams),
        "missing_fragments": len(missing), "partial": bool(missing or gap_total),
        "bytes_fetched": sum(s.fragment_bytes for s in streams),
        **record_columns(call),
    }
    return {
        "calls": [call_row],
        "channels": [{**identity, **c, "stream_arn": plan.arns.get(c["channel"])}
                     for c in analysis.channels],
        "segments": [{**identity, **s} for s in analysis.segments],
        "gaps": [{**identity, **g} for g in analysis.gaps],
        "phases": [{**identity, **p} for p in analysis.phases],
    }


# What the records say of the call that analysts rank and group by; never phone numbers or contact
# attributes (personal data).
RECORD_COLUMNS = ("agent_username", "queue_name", "routing_profile", "initiation_method",
                  "disconnect_reason", "initial_contact_id", "previous_contact_id", "direction")


def record_columns(call: CallSpec) -> dict:
    attributes = dict(call.attributes)
    contact = call.contact
    return {**{name: attributes.get(name) for name in RECORD_COLUMNS},
            "hold_ms_ctr": contact.hold_ms if contact else None,
            "hold_count_ctr": contact.hold_count if contact else None}


class _AnalyseCall(beam.DoFn):
    def __init__(self, root: str, *, target_sample_rate: int, allow_missing_fragments: bool,
                 write_raw_channels: bool, vad: features.VadConfig):
        self.root = root
        self.target = target_sample_rate
        self.allow_missing, self.write_raw = allow_missing_fragments, write_raw_channels
        self.vad = vad
        self.calls = progress.counted(Metrics.counter(NAMESPACE, "calls"))
        self.audio_ms = Metrics.counter(NAMESPACE, "audio_ms")
        self.cpu_ms = Metrics.counter(NAMESPACE, "cpu_ms")  # this stage's own CPU, for profiles

    def setup(self):
        if self.vad.neural:  # load the model once per worker process, not in the first call's time
            vad_model.session()

    def process(self, element):
        _, streams = element
        streams = sorted(streams, key=lambda s: s.stream_index)
        call = streams[0].call
        started = time.thread_time()
        try:
            landed = self.analyse(call, streams)
        except CallProblem as problem:
            landed = problem
        self.cpu_ms.inc(int((time.thread_time() - started) * 1000))
        if isinstance(landed, CallProblem):
            yield beam.pvalue.TaggedOutput(FAILURES, call_failure(
                call, landed.stage, landed.reason, landed.detail))
            return
        self.calls.inc()
        yield landed

    def analyse(self, call: CallSpec, streams) -> CallRows:
        errors = [s.error for s in streams if s.error]
        if errors:
            raise CallProblem(*call_reason(errors), stage="media")
        missing = {n: why for s in streams for n, why in s.missing}
        if missing and not self.allow_missing:
            raise CallProblem(*missing_reason(missing), stage="media")
        plan = call_audio.plan_call_audio(call, streams)
        paths = [layout.wav_path(self.root, call.date, call.partition_id, call.call_id)]
        if self.write_raw:
            paths.append(layout.wav_path(self.root, call.date, call.partition_id, call.call_id,
                                         source=True))
        with contextlib.ExitStack() as stack:
            local = {path: stack.enter_context(storage.readable(path))
                     for pieces in plan.readers for path, _ in pieces}
            # staged until the run commits: a run that dies leaves the lake's WAVs as they were
            wavs = [stack.enter_context(storage.writable(layout.staged(self.root, path))) for path in paths]
            analysis = call_audio.analyse_and_write(
                plan, local=local.__getitem__, ml_wav=wavs[0], target_rate=self.target,
                raw_wav=wavs[1] if self.write_raw else None, vad_config=self.vad,
                contact=call.contact)
        self.audio_ms.inc(analysis.call["duration_ms"])
        rows = call_rows(call, streams, plan, analysis, target_rate=self.target, wav_path=paths[0],
                         missing=missing)
        return lake_files.write_call_rows(
            self.root, date=call.date, partition=call.partition_id, source=call.source,
            call_id=call.call_id, rows=rows, wavs=paths, partial=rows["calls"][0]["partial"])


@beam.typehints.with_input_types(tuple[str, StreamAudio])
class AnalyseCalls(beam.PTransform):
    """(call key, StreamAudio) -> a ``CallRows`` per landed call (main), Failures (``failures``).

    ``root`` is the lake as ``calls.wav_path`` names it: absolute for a local lake
    (``storage.absolute``), so an analyst can open the WAV from a query."""

    def __init__(self, root: str, *, target_sample_rate=16000, allow_missing_fragments=False,
                 write_raw_channels=False, vad: features.VadConfig = features.VadConfig()):
        super().__init__()
        self.fn = _AnalyseCall(root, target_sample_rate=target_sample_rate,
                               allow_missing_fragments=allow_missing_fragments,
                               write_raw_channels=write_raw_channels, vad=vad)

    def expand(self, keyed_streams):
        out = (
            keyed_streams
            | "GroupByCall" >> beam.GroupByKey()
            | "AnalyseCall" >> beam.ParDo(self.fn).with_output_types(CallRows, failures=Failure)
            .with_outputs(FAILURES, main="calls")
        )
        return out.calls, out[FAILURES]
