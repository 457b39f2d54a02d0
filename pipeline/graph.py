"""The data flow, composed: records -> calls -> fragment ranges -> (by stream) channel files ->
(by call) features, WAVs and row shards -> the lake.  Only small values cross the shuffles: paths,
ranges and notes, never samples or a night's rows.  With --from_lake the channel files come from
the lake's source WAVs instead of KVS (calls -> (by partition) earlier rows -> channel files)."""
from __future__ import annotations

import apache_beam as beam
from apache_beam.metrics import Metrics

from pipeline.options import VoicelakeOptions, run_dates, vad_config
from transforms.analyse_calls import AnalyseCalls
from transforms.failure_rows import FailureRows
from transforms.fetch_media import FetchStreams
from transforms.fragment_ranges import PlanFragmentRanges
from transforms.lake_audio import LakeAudio
from transforms.lake_sink import WriteLake
from transforms.read_records import ReadChimeCalls, ReadConnectCalls
from voicelake import lifecycle, storage


def _remembered(call, forgotten: frozenset[str]) -> bool:
    """False for a call (CallSpec) the erasure ledger names: counted, and never written again."""
    if lifecycle.is_forgotten(call.call_id, forgotten):
        Metrics.counter("voicelake.lake", "forgotten_calls").inc()
        return False
    return True


def _not_of_forgotten(failure, forgotten: frozenset[str]) -> bool:
    return not lifecycle.is_forgotten(getattr(failure, "call_id", None), forgotten)


def build(p: beam.Pipeline, opts: VoicelakeOptions) -> None:
    dates = run_dates(opts)
    if not opts.output:
        raise ValueError("--output is required")
    root = storage.absolute(opts.output)  # every stage names the same files the same way
    calls, failures = [], []
    if opts.ctr_prefix:
        connect, bad = p | "ConnectCalls" >> ReadConnectCalls(
            opts.ctr_prefix, dates, lookahead_hours=opts.lookahead_hours,
            attribute_keys=opts.connect_attribute_keys, max_object_mb=opts.max_record_object_mb)
        calls.append(connect)
        failures.append(bad)
    if opts.sdr_prefix or opts.events_prefix:
        chime, bad = p | "ChimeCalls" >> ReadChimeCalls(
            opts.sdr_prefix, opts.events_prefix, dates, lookahead_hours=opts.lookahead_hours,
            customer_leg=opts.customer_leg, max_object_mb=opts.max_record_object_mb)
        calls.append(chime)
        failures.append(bad)
    if not calls:
        raise ValueError("give at least one of --ctr_prefix, --sdr_prefix, --events_prefix")
    all_calls = calls | "AllCalls" >> beam.Flatten()
    forgotten = lifecycle.read_ledger(root)  # read once, here: calls `voicelake forget` removed
    if forgotten:
        all_calls = all_calls | "LeaveOutForgotten" >> beam.Filter(_remembered, forgotten)
        failures = [bad | f"LeaveOutForgottenFailures{i}" >> beam.Filter(_not_of_forgotten, forgotten)
                    for i, bad in enumerate(failures)]
    if opts.from_lake:  # the lake's own source audio stands in for KVS; the analysis is the same
        if not opts.write_raw_channels:
            raise ValueError("--from_lake rewrites the source audio it reads (the lake's only copy "
                             "of it): leave out --no_write_raw_channels")
        audio, bad_calls = all_calls | "LakeAudio" >> LakeAudio(root)
    else:
        ranges, bad_calls = all_calls | "FragmentRanges" >> PlanFragmentRanges(
            endpoint_url=opts.kvs_endpoint_url, region=opts.kvs_region,
            selector=opts.fragment_selector, pad_ms=opts.max_fragment_ms,
            fragments_per_range=opts.fragments_per_range, max_attempts=opts.max_attempts,
            retry_budget_s=opts.kvs_retry_budget_s)
        audio = ranges | "FetchMedia" >> FetchStreams(
            root, endpoint_url=opts.kvs_endpoint_url, region=opts.kvs_region,
            max_attempts=opts.max_attempts, retry_budget_s=opts.kvs_retry_budget_s)
    landed, bad_audio = audio | "Analyse" >> AnalyseCalls(
        root, target_sample_rate=opts.target_sample_rate,
        allow_missing_fragments=opts.allow_missing_fragments,
        write_raw_channels=opts.write_raw_channels, vad=vad_config(opts))
    failure_rows = ((*failures, bad_calls, bad_audio) | "AllFailures" >> beam.Flatten()
                    | "FailureRows" >> FailureRows(dates))
    (landed, failure_rows) | "Lake" >> WriteLake(root, dates, keep_earlier=not opts.replace,
                                                   forgotten=forgotten)
