"""Record objects in S3 (or local folders) -> CallSpec, and Failure for what cannot be used.

Connect: CTRs arrive through Firehose, concatenated without delimiter, at least once, filed under
their *arrival* hour; the run reads its days plus a look-ahead window and keeps one CTR per
ContactId (the latest LastUpdateTimestamp).  Chime: one call per TransactionId, joining the SDR
(billing, optional) with the streaming-status events (streams, legs, roles).  The parsing itself is
``voicelake.records``; these transforms only list, read, group and route.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import re

import apache_beam as beam
from apache_beam.metrics import Metrics

from voicelake import progress, records, storage
from voicelake.model import CHIME, CONNECT, CallSpec, Failure
from transforms.common import FAILURES

NAMESPACE = "voicelake.records"
# records.<kind>_records: the summary's records per source (CTRs, events; SDRs count as "sdr")
RECORD_KIND = {CONNECT: "ctr", CHIME: "event"}
_FOLDER_DATE = re.compile(r"(?:^|/)(\d{4})/(\d{2})/(\d{2})/(?:\d{2}/)?[^/]*$")


def folder_date(key: str) -> str | None:
    """The UTC day of a Firehose hour folder or an SDR day folder in an object key."""
    match = _FOLDER_DATE.search(key)
    return "-".join(match.groups()) if match else None


def list_objects(pattern: str) -> list[str]:
    return storage.list_paths(pattern)


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


class _ReadRecords(beam.DoFn):
    """An object path -> Sourced records (main) and Failures for the parts that are not JSON."""

    def __init__(self, source: str):
        self.source = source
        self.objects = Metrics.counter(NAMESPACE, f"{source}_objects")
        self.records = progress.counted(Metrics.counter(NAMESPACE, "records"))
        self.source_records = Metrics.counter(NAMESPACE, f"{RECORD_KIND[source]}_records")

    def process(self, path: str):
        self.objects.inc()
        for item in records.read_records(read_object(path), source=self.source, source_key=path):
            if isinstance(item, Failure):
                yield beam.pvalue.TaggedOutput(FAILURES, dated(item))
            else:
                self.records.inc()
                self.source_records.inc()
                yield item


class _ListAndRead(beam.PTransform):
    """Glob patterns -> object paths, spread over workers -> Sourced records + Failures."""

    def __init__(self, patterns: list[str], source: str):
        super().__init__()
        self.patterns, self.source = patterns, source

    def expand(self, pbegin):
        read = (
            pbegin
            | "Patterns" >> beam.Create(self.patterns)
            | "List" >> beam.FlatMap(list_objects)
            | "SpreadObjects" >> beam.Reshuffle()
            | "Read" >> beam.ParDo(_ReadRecords(self.source)).with_outputs(FAILURES, main="records")
        )
        return read.records, read[FAILURES]


def _route(dates: set[str]):
    """CallSpec for the run's days to the main output, Failures (dated) to ``failures``."""
    planned = {s: progress.counted(Metrics.counter(NAMESPACE, f"{s}_calls")) for s in (CONNECT, CHIME)}

    def route(item):
        if isinstance(item, Failure):
            yield beam.pvalue.TaggedOutput(FAILURES, dated(item))
        elif item.date in dates:
            planned[item.source].inc()
            yield item

    return route


class ReadConnectCalls(beam.PTransform):
    def __init__(self, ctr_prefix: str, dates: list[str], *, lookahead_hours: int = 24,
                 attribute_keys: str | None = None):
        super().__init__()
        self.prefix, self.dates, self.lookahead = ctr_prefix, dates, lookahead_hours
        names = [k.strip() for k in attribute_keys.split(",")] if attribute_keys else []
        self.keys = records.ConnectAttributeKeys(*names) if names else records.ConnectAttributeKeys()

    def expand(self, pbegin):
        folders = records.firehose_hour_prefixes(*_days(self.dates), self.lookahead,
                                                 base=self.prefix.rstrip("/") + "/")
        ctrs, bad = pbegin | "CtrObjects" >> _ListAndRead([f + "*" for f in folders], CONNECT)
        keys = self.keys
        calls = (
            ctrs
            | "ByContact" >> beam.Map(lambda s: (records.dedupe_key(s), s))
            | "LatestCtr" >> beam.CombinePerKey(lambda copies: functools.reduce(records.latest_ctr, copies))
            | "ToCalls" >> beam.FlatMap(lambda kv: _as_list(records.connect_calls(
                kv[1].record, source_key=kv[1].source_key, offset=kv[1].offset, attribute_keys=keys)))
            | "Route" >> beam.FlatMap(_route(set(self.dates))).with_outputs(FAILURES, main="calls")
        )
        failures = (bad, calls[FAILURES]) | "ConnectFailures" >> beam.Flatten()
        return calls.calls, failures


def _as_list(result):
    return [result] if isinstance(result, Failure) else result


class _ParseSdr(beam.DoFn):
    def __init__(self):
        self.records = progress.counted(Metrics.counter(NAMESPACE, "records"))
        self.sdr_records = Metrics.counter(NAMESPACE, "sdr_records")

    def process(self, path: str):
        self.records.inc()
        self.sdr_records.inc()
        sdr = records.parse_sdr(read_object(path), path)
        if isinstance(sdr, Failure):
            yield beam.pvalue.TaggedOutput(FAILURES, dated(sdr))
        else:
            yield sdr.transaction_id, sdr


def _parse_event(sourced):
    event = records.parse_streaming_event(sourced.record, source_key=sourced.source_key,
                                          offset=sourced.offset)
    if isinstance(event, Failure):
        yield beam.pvalue.TaggedOutput(FAILURES, dated(event))
    elif event is not None:
        yield event.transaction_id, event


class ReadChimeCalls(beam.PTransform):
    def __init__(self, sdr_prefix: str | None, events_prefix: str | None, dates: list[str], *,
                 lookahead_hours: int = 24, customer_leg: str = "auto"):
        super().__init__()
        self.sdr_prefix, self.events_prefix = sdr_prefix, events_prefix
        self.dates, self.lookahead, self.customer_leg = dates, lookahead_hours, customer_leg

    def expand(self, pbegin):
        failures, joined = [], {}
        if self.sdr_prefix:
            base = self.sdr_prefix.rstrip("/") + "/" + records.SDR_ROOT
            patterns = [f"{base}*/{d.replace('-', '/')}/*" for d in self.dates]
            parsed = (
                pbegin
                | "SdrPatterns" >> beam.Create(patterns)
                | "ListSdrs" >> beam.FlatMap(list_objects)
                | "SpreadSdrs" >> beam.Reshuffle()
                | "ParseSdrs" >> beam.ParDo(_ParseSdr()).with_outputs(FAILURES, main="sdrs")
            )
            joined["sdr"] = parsed.sdrs
            failures.append(parsed[FAILURES])
        if self.events_prefix:
            folders = records.firehose_hour_prefixes(*_days(self.dates), self.lookahead,
                                                     base=self.events_prefix.rstrip("/") + "/")
            sourced, bad = pbegin | "EventObjects" >> _ListAndRead([f + "*" for f in folders], CHIME)
            events = sourced | "ParseEvents" >> beam.FlatMap(_parse_event).with_outputs(
                FAILURES, main="events")
            joined["events"] = events.events
            failures += [bad, events[FAILURES]]
        customer_leg, dates = self.customer_leg, set(self.dates)
        calls = (
            joined
            | "ByTransaction" >> beam.CoGroupByKey()
            | "ToCalls" >> beam.Map(lambda kv: _chime_call(kv[1], customer_leg))
            | "Route" >> beam.FlatMap(_route(dates)).with_outputs(FAILURES, main="calls")
        )
        failures.append(calls[FAILURES])
        return calls.calls, failures | "ChimeFailures" >> beam.Flatten()


def _chime_call(grouped: dict, customer_leg: str) -> CallSpec | Failure:
    sdrs = sorted(grouped.get("sdr", []), key=lambda s: s.source_key)
    events = sorted(grouped.get("events", []), key=lambda e: (e.source_key, e.offset))
    return records.chime_call(sdrs[0] if sdrs else None, events, customer_leg=customer_leg)
