"""Record objects in S3 (or local folders) -> CallSpec, and Failure for what cannot be used.

Connect: CTRs arrive through Firehose, concatenated without delimiter, at least once, filed under
their *arrival* hour; the run reads its days plus a look-ahead window and keeps one CTR per
ContactId (the latest LastUpdateTimestamp).  Chime: one call per TransactionId, joining the SDR
(billing, optional) with the streaming-status events (streams, legs, roles).  The parsing itself is
``voicelake.records.firehose`` (splitting objects), ``voicelake.records.ctr`` and
``voicelake.records.chime_records``; these transforms only list, read, group and route.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import re
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms.common import FAILURES
from voicelake import progress, storage
from voicelake.model import CHIME, CONNECT, CallSpec, Failure
from voicelake.records import chime_records, ctr, firehose
from voicelake.records.record_fields import STAGE

NAMESPACE = "voicelake.records"
# records.<kind>_records: the summary's records per source (CTRs, events; SDRs count as "sdr")
RECORD_KIND = {CONNECT: "ctr", CHIME: "event"}
_FOLDER_DATE = re.compile(r"(?:^|/)(\d{4})/(\d{2})/(\d{2})/(?:\d{2}/)?[^/]*$")


def folder_date(key: str) -> str | None:
    """The UTC day of a Firehose hour folder or an SDR day folder in an object key."""
    match = _FOLDER_DATE.search(key)
    return "-".join(match.groups()) if match else None


def list_objects(pattern: str) -> list[tuple[str, int]]:
    """Object paths with their sizes: a reader refuses an object too large before reading it."""
    return storage.list_sizes(pattern)


def read_object(path: str) -> bytes:
    # Compression is detected from the bytes (gzip magic) by the parser, never from the name.
    return storage.read_bytes(path)


def dated(failure: Failure) -> Failure:
    """A record failure belongs to the day of the folder it was found in."""
    if failure.date is None and failure.source_key:
        return dataclasses.replace(failure, date=folder_date(failure.source_key))
    return failure


def _days(dates: list[str]) -> tuple[dt.date, dt.date]:
    return dt.date.fromisoformat(dates[0]), dt.date.fromisoformat(dates[-1])


def max_object_bytes(pbegin, max_object_mb: float | None) -> int:
    """The cap on a record object's (inflated) size: ``max_object_mb`` if given, else the run's
    ``--max_record_object_mb`` (read by name: transforms sit below the pipeline's options)."""
    if max_object_mb is None:
        max_object_mb = pbegin.pipeline.options.get_all_options().get("max_record_object_mb")
    if max_object_mb is None:
        max_object_mb = firehose.DEFAULT_MAX_OBJECT_MB
    if not max_object_mb > 0:
        raise ValueError(f"--max_record_object_mb must be positive, not {max_object_mb}")
    return int(max_object_mb * firehose.MB)


def too_large(path: str, size: int, max_bytes: int, source: str) -> Failure | None:
    """The failure of an object listed larger than the cap (it is never read), else None."""
    if size <= max_bytes:
        return None
    partition = chime_records.voice_connector_of_key(path) if source == CHIME else None
    return dated(Failure(stage=STAGE, reason="too_large", source=source, partition_id=partition,
                         detail=firehose.too_large_detail(f"is {size} bytes, more", max_bytes),
                         source_key=path, source_offset=0))


def read_by_run_of(key: str, day: str, lookahead_hours: int) -> bool:
    """Whether the run of ``day`` reads the object ``key``: an SDR only in its own day's folder,
    a Firehose object in the hour folders from the hour before the day to its look-ahead."""
    sdr_key = chime_records.parse_sdr_key(key)
    if sdr_key is not None:
        return sdr_key.date == day
    return firehose.listed_for(key, dt.date.fromisoformat(day), lookahead_hours)


def out_of_range(call: CallSpec, lookahead_hours: int) -> Failure:
    """A call dated outside the run that no run reads the record of: reported under the day of
    the record's folder (the run that reads that folder as its own day), never dropped."""
    sdr_key, hour = chime_records.parse_sdr_key(call.source_key), firehose.hour_folder(call.source_key)
    if sdr_key is not None:
        where = f"its SDR is filed under {sdr_key.date}, a folder only the run of {sdr_key.date} reads"
    elif hour is not None:
        where = (f"its record arrived in the {hour:%Y/%m/%d/%H} folder, which the run of {call.date} does "
                 f"not read (it reads 1 h before its day to {lookahead_hours} h after it, --lookahead_hours)")
    else:
        where = "its key has no date folder to tell which run should read it"
    return dated(Failure(stage=STAGE, reason="date_out_of_range", source=call.source, call_id=call.call_id,
                         partition_id=call.partition_id, source_key=call.source_key,
                         source_offset=call.source_offset,
                         detail=f"the call starts on {call.date} (UTC) but {where}"))


class _ReadRecords(beam.DoFn):
    """A listed object (path, size) -> Sourced records (main) and Failures for the parts that are
    not records."""

    def __init__(self, source: str, max_bytes: int):
        self.source, self.max_bytes = source, max_bytes
        self.objects = Metrics.counter(NAMESPACE, f"{source}_objects")
        self.records = progress.counted(Metrics.counter(NAMESPACE, "records"))
        self.source_records = Metrics.counter(NAMESPACE, f"{RECORD_KIND[source]}_records")

    def process(self, listed: tuple[str, int]):
        path, size = listed
        self.objects.inc()
        refused = too_large(path, size, self.max_bytes, self.source)
        if refused is not None:
            yield beam.pvalue.TaggedOutput(FAILURES, refused)
            return
        for item in firehose.read_records(read_object(path), source=self.source, source_key=path,
                                          max_bytes=self.max_bytes):
            if isinstance(item, Failure):
                yield beam.pvalue.TaggedOutput(FAILURES, dated(item))
            else:
                self.records.inc()
                self.source_records.inc()
                yield item


class _ListAndRead(beam.PTransform):
    """Glob patterns -> listed objects, spread over workers -> Sourced records + Failures."""

    def __init__(self, patterns: list[str], source: str, max_object_mb: float | None):
        super().__init__()
        self.patterns, self.source, self.max_object_mb = patterns, source, max_object_mb

    def expand(self, pbegin):
        read = (
            pbegin
            | "Patterns" >> beam.Create(self.patterns)
            | "List" >> beam.FlatMap(list_objects)
            | "SpreadObjects" >> beam.Reshuffle()
            | "Read" >> beam.ParDo(_ReadRecords(self.source, max_object_bytes(pbegin, self.max_object_mb)))
            .with_output_types(Any, failures=Failure).with_outputs(FAILURES, main="records")
        )
        return read.records, read[FAILURES]


def _route(dates: set[str], lookahead_hours: int):
    """(CallSpec or Failure, keys of the call's records) -> the call if it is of the run's days,
    Failures (dated) to ``failures``. A call of another day is left to that day's run if it reads
    one of the call's records, else it is a ``date_out_of_range`` failure."""

    planned = {s: progress.counted(Metrics.counter(NAMESPACE, f"{s}_calls")) for s in (CONNECT, CHIME)}

    def route(item):
        result, keys = item
        if isinstance(result, Failure):
            yield beam.pvalue.TaggedOutput(FAILURES, dated(result))
        elif result.date in dates:
            planned[result.source].inc()
            yield result
        elif not any(read_by_run_of(key, result.date, lookahead_hours) for key in keys):
            yield beam.pvalue.TaggedOutput(FAILURES, out_of_range(result, lookahead_hours))

    return route


class ReadConnectCalls(beam.PTransform):
    """The pipeline's root -> (CallSpec of each Connect call of the run's days, Failure): CTRs from
    Firehose objects, each contact's latest copy."""

    def __init__(self, ctr_prefix: str, dates: list[str], *, lookahead_hours: int = 24,
                 attribute_keys: str | None = None, max_object_mb: float | None = None):
        super().__init__()
        self.prefix, self.dates, self.lookahead = ctr_prefix, dates, lookahead_hours
        self.max_object_mb = max_object_mb
        names = [k.strip() for k in attribute_keys.split(",")] if attribute_keys else []
        self.keys = ctr.ConnectAttributeKeys(*names) if names else ctr.ConnectAttributeKeys()

    def expand(self, pbegin):
        folders = firehose.firehose_hour_prefixes(*_days(self.dates), self.lookahead,
                                                  base=self.prefix.rstrip("/") + "/")
        ctrs, bad = pbegin | "CtrObjects" >> _ListAndRead([f + "*" for f in folders], CONNECT, self.max_object_mb)
        keys = self.keys
        calls = (
            ctrs
            | "ByContact" >> beam.Map(lambda s: (ctr.dedupe_key(s), s))
            | "LatestCtr" >> beam.CombinePerKey(lambda copies: functools.reduce(ctr.latest_ctr, copies))
            | "ToCalls" >> beam.FlatMap(lambda kv: [(result, (kv[1].source_key,)) for result in _as_list(
                ctr.connect_calls(kv[1].record, source_key=kv[1].source_key, offset=kv[1].offset,
                                  attribute_keys=keys))])
            | "Route" >> beam.FlatMap(_route(set(self.dates), self.lookahead))
            .with_output_types(CallSpec, failures=Failure).with_outputs(FAILURES, main="calls")
        )
        failures = (bad, calls[FAILURES]) | "ConnectFailures" >> beam.Flatten()
        return calls.calls, failures


def _as_list(result):
    return [result] if isinstance(result, Failure) else result


class _ParseSdr(beam.DoFn):
    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.records = progress.counted(Metrics.counter(NAMESPACE, "records"))
        self.sdr_records = Metrics.counter(NAMESPACE, "sdr_records")

    def process(self, listed: tuple[str, int]):
        path, size = listed
        self.records.inc()
        self.sdr_records.inc()
        sdr = too_large(path, size, self.max_bytes, CHIME) or chime_records.parse_sdr(
            read_object(path), path, max_bytes=self.max_bytes)
        if isinstance(sdr, Failure):
            yield beam.pvalue.TaggedOutput(FAILURES, dated(sdr))
        else:
            yield sdr.transaction_id, sdr


def _parse_event(sourced):
    event = chime_records.parse_streaming_event(sourced.record, source_key=sourced.source_key,
                                                offset=sourced.offset)
    if isinstance(event, Failure):
        yield beam.pvalue.TaggedOutput(FAILURES, dated(event))
    elif event is not None:
        yield event.transaction_id, event


class ReadChimeCalls(beam.PTransform):
    """The pipeline's root -> (CallSpec of each Chime call of the run's days, Failure): SDRs joined
    with their streaming-status events by transaction."""

    def __init__(self, sdr_prefix: str | None, events_prefix: str | None, dates: list[str], *,
                 lookahead_hours: int = 24, customer_leg: str = "auto", max_object_mb: float | None = None):
        super().__init__()
        self.sdr_prefix, self.events_prefix = sdr_prefix, events_prefix
        self.dates, self.lookahead, self.customer_leg = dates, lookahead_hours, customer_leg
        self.max_object_mb = max_object_mb

    def expand(self, pbegin):
        failures, joined = [], {}
        if self.sdr_prefix:
            base = self.sdr_prefix.rstrip("/") + "/" + chime_records.SDR_ROOT
            patterns = [f"{base}*/{d.replace('-', '/')}/*" for d in self.dates]
            parsed = (
                pbegin
                | "SdrPatterns" >> beam.Create(patterns)
                | "ListSdrs" >> beam.FlatMap(list_objects)
                | "SpreadSdrs" >> beam.Reshuffle()
                | "ParseSdrs" >> beam.ParDo(_ParseSdr(max_object_bytes(pbegin, self.max_object_mb)))
                .with_output_types(Any, failures=Failure).with_outputs(FAILURES, main="sdrs")
            )
            joined["sdr"] = parsed.sdrs
            failures.append(parsed[FAILURES])
        if self.events_prefix:
            folders = firehose.firehose_hour_prefixes(*_days(self.dates), self.lookahead,
                                                      base=self.events_prefix.rstrip("/") + "/")
            sourced, bad = pbegin | "EventObjects" >> _ListAndRead([f + "*" for f in folders], CHIME,
                                                                   self.max_object_mb)
            events = sourced | "ParseEvents" >> beam.FlatMap(_parse_event).with_output_types(
                Any, failures=Failure).with_outputs(FAILURES, main="events")
            joined["events"] = events.events
            failures += [bad, events[FAILURES]]
        customer_leg, dates = self.customer_leg, set(self.dates)
        calls = (
            joined
            | "ByTransaction" >> beam.CoGroupByKey()
            | "ToCalls" >> beam.Map(lambda kv: _chime_call(kv[1], customer_leg))
            | "Route" >> beam.FlatMap(_route(dates, self.lookahead))
            .with_output_types(CallSpec, failures=Failure).with_outputs(FAILURES, main="calls")
        )
        failures.append(calls[FAILURES])
        return calls.calls, failures | "ChimeFailures" >> beam.Flatten()


def _chime_call(grouped: dict, customer_leg: str) -> tuple[CallSpec | Failure, tuple[str, ...]]:
    """A transaction's records -> its call (or Failure), with the keys of all its records."""
    sdrs = sorted(grouped.get("sdr", []), key=lambda s: s.source_key)
    events = sorted(grouped.get("events", []), key=lambda e: (e.source_key, e.offset))
    call = chime_records.chime_call(sdrs[0] if sdrs else None, events, customer_leg=customer_leg)
    return call, tuple(s.source_key for s in sdrs) + tuple(e.source_key for e in events)
