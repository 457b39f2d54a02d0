"""Landed calls and failure rows -> the lake, staged: Hive-partitioned Parquet with deterministic
names, committed once by the run (``voicelake.lake_commit``), and nothing an earlier run landed lost.

Beam's WriteToParquet / fileio.WriteToFiles lose rows on Hive paths or duplicate them when a re-run
shards differently (beam.md §3), so every (table, date, partition) is grouped and written by one
DoFn under fixed names ``part-00000.parquet``...  What is grouped is small: a landed call's rows
already wait in row shards in the scratch (``voicelake.lake_files``), and only its ``CallRows``
note crosses the shuffle, so neither the runner nor a worker holds a night's rows.  Failures are
few and come from every stage; they travel as rows.

Like Beam's ``FileBasedSink``, every file goes to a staging name first (``layout.staged``; the
per-call stage stages its WAVs the same way), and the last step only plans: what the commit will
delete.  The run commits after the pipeline has succeeded, so a run that dies before that leaves
every day as it was.

**What landed stays until something better replaces it.**  A call an earlier run landed keeps its
rows and WAVs unless this run lands it again: its media may be gone from KVS (retention), the run
may lack access, or its record may no longer be listed.  Each partition of the run's dates is
written from this run's calls and the earlier rows of every other call (``lake_files.kept_parts``),
and ``failures`` says which calls kept an earlier landing and why (``kept`` = true).  With
``keep_earlier=False`` (``--replace``) the run's dates are replaced outright: what it did not land
is gone.  Re-running a day whose calls all land again writes the same bytes as the first run.
"""
from __future__ import annotations

import itertools
import json

import apache_beam as beam
from apache_beam.metrics import Metrics

from schemas import tables
from voicelake import lake_files, layout, lifecycle, storage
from voicelake.lake_commit import kept_failures
from voicelake.layout import Partition
from voicelake.model import CallRows

NAMESPACE = "voicelake.lake"
KEPT = "kept"
CALL_TABLES = lake_files.CALL_TABLES


def _write_staged(root: str, table: str, date: str, partition: str, files) -> int:
    count = 0
    for n, data in enumerate(files):
        storage.write_bytes(layout.staged(root, layout.table_file(root, table, date, partition, n)), data)
        count += 1
    return count


class _WriteCallPartition(beam.DoFn):
    """((table, date, partition), landed calls' notes) -> its staged Parquet files, from this run's
    calls and the earlier rows of the calls it keeps; yields the partitions it wrote (for ``calls``,
    the audio partition too) and, tagged ``kept``, ((date, partition), (call_id, source)) of each
    call that keeps an earlier landing."""

    def __init__(self, root: str, keep_earlier: bool, forgotten: frozenset[str]):
        self.root, self.keep_earlier, self.forgotten = root, keep_earlier, forgotten
        self.files = Metrics.counter(NAMESPACE, "parquet_files")
        self.partial_calls = Metrics.counter(NAMESPACE, "partial_calls")  # the summary's partial_calls

    def process(self, element):
        (table, date, partition), notes = element
        notes = [n for n in notes if n is not None and table in n.tables]
        earlier = lake_files.landed_files(self.root, table, date, partition) if self.keep_earlier else []
        kept_keys: list[tuple[str, str]] = []

        def kept():
            for key, part in lake_files.kept_parts(table, earlier, {n.call_id for n in notes}):
                if lifecycle.is_forgotten(key[0], self.forgotten):  # forget ran but did not finish
                    continue
                kept_keys.append(key)
                yield key, part
        parts = kept()
        first = next(parts, None)
        if not notes and first is None:  # nothing to land and nothing kept: the partition goes
            return
        parts = itertools.chain([first], parts) if first is not None else ()
        self.files.inc(_write_staged(self.root, table, date, partition,
                                     lake_files.merged_parquet_files(self.root, table, notes, parts)))
        yield Partition(table, date, partition)
        if table == "calls":
            self.partial_calls.inc(sum(1 for call in notes if call.partial))
            yield Partition(layout.AUDIO, date, partition)
            for key in dict.fromkeys(kept_keys):
                yield beam.pvalue.TaggedOutput(KEPT, ((date, partition), key))


class _WriteFailures(beam.DoFn):
    """((date, partition), {failures: rows, kept: calls}) -> the partition's staged failures file."""

    def __init__(self, root: str):
        self.root = root
        self.files = Metrics.counter(NAMESPACE, "parquet_files")
        self.kept_calls = Metrics.counter(NAMESPACE, "kept_calls")

    def process(self, element):
        (date, partition), grouped = element
        rows, reasons = kept_failures(list(grouped["failures"]), list(dict.fromkeys(grouped[KEPT])))
        if not rows:
            return
        self.kept_calls.inc(len(reasons))
        for reason in reasons:
            Metrics.counter("voicelake.kept", reason).inc()
        self.files.inc(_write_staged(self.root, "failures", date, partition,
                                     lake_files.parquet_files("failures", rows)))
        yield Partition("failures", date, partition)


class _PlanCommit(beam.DoFn):
    """(every partition written, every kept call) -> the commit's plan: which files of the run's
    dates go when the staged ones come in.  In a written partition: every file the run did not
    stage, but the WAVs of calls that keep an earlier landing; every partition it did not write."""

    def __init__(self, root: str, dates: list[str]):
        self.root, self.dates = root, dates
        self.removed = Metrics.counter(NAMESPACE, "stale_files_removed")

    def process(self, written: list[Partition], kept: list):
        written, kept_wavs = set(written), {(date, partition, call_id) for (date, partition), (call_id, _) in kept}
        staged = {layout.unstaged(self.root, date, path) for date in self.dates
                  for path in storage.list_tree(layout.staging_dir(self.root, date))}
        stale = []
        for date in self.dates:
            for folder in (*tables.TABLES, layout.AUDIO):
                for path in storage.list_tree(layout.date_dir(self.root, folder, date)):
                    place = layout.partition_of(self.root, path)
                    if path in staged or (place in written and folder == layout.AUDIO and (
                            place.date, place.partition, layout.call_of_wav(path)) in kept_wavs):
                        continue
                    stale.append(path)
        if stale:  # a counter that exists only when something was removed, as the summary has it
            self.removed.inc(len(stale))
        plan = {"dates": self.dates, "delete": sorted(stale)}
        storage.write_bytes(layout.commit_plan(self.root, self.dates),
                            (json.dumps(plan, indent=0, sort_keys=True) + "\n").encode())
        yield len(stale)


def _by_table_partition(call: CallRows):
    return [((table, call.date, call.partition), call) for table in call.tables]


def _existing_partitions(date: str, root: str):
    """The call tables' partitions an earlier run left under ``date``: written again with the
    calls they keep, even when this run lands none of theirs."""
    found = set()
    for table in CALL_TABLES:
        for path in storage.list_paths(layout.table_files(root, table, date)):
            place = layout.partition_of(root, path)
            if place is not None:
                found.add(((table, place.date, place.partition), None))
    return sorted(found)


@beam.typehints.with_output_types(int)
class WriteLake(beam.PTransform):
    """(landed calls' ``CallRows``, failure rows ``(table, date, partition, row)``) -> staged Parquet
    partitions and the commit's plan; outputs how many files the commit will remove."""

    def __init__(self, root: str, dates: list[str], *, keep_earlier: bool = True,
                 forgotten: frozenset[str] = frozenset()):
        super().__init__()
        self.root, self.dates, self.keep_earlier, self.forgotten = root, dates, keep_earlier, forgotten

    def expand(self, inputs):
        calls, failure_rows = inputs
        keyed = [calls | "ByCallPartition" >> beam.FlatMap(_by_table_partition)
                 .with_output_types(tuple[tuple[str, str, str], beam.typehints.Optional[CallRows]])]
        if self.keep_earlier:
            keyed.append(
                calls.pipeline | "RunDates" >> beam.Create(self.dates)
                | "EarlierPartitions" >> beam.FlatMap(_existing_partitions, self.root)
                .with_output_types(tuple[tuple[str, str, str], beam.typehints.Optional[CallRows]]))
        written_calls = (
            keyed | "CallPartitions" >> beam.Flatten()
            | "GroupPartitions" >> beam.GroupByKey()
            | "WritePartitions" >> beam.ParDo(_WriteCallPartition(self.root, self.keep_earlier, self.forgotten))
            .with_outputs(KEPT, main="written")
        )
        failures = failure_rows | "ByFailurePartition" >> beam.Map(lambda r: ((r[1], r[2]), r[3])) \
            .with_output_types(tuple[tuple[str, str], dict])
        written_failures = (
            {"failures": failures, KEPT: written_calls[KEPT]} | "FailuresAndKept" >> beam.CoGroupByKey()
            | "WriteFailures" >> beam.ParDo(_WriteFailures(self.root)).with_output_types(Partition)
        )
        kept = written_calls[KEPT] | "AllKept" >> beam.combiners.ToList()
        return (
            (written_calls.written, written_failures) | "AllWritten" >> beam.Flatten()
            | "CollectWritten" >> beam.combiners.ToList()
            | "PlanCommit" >> beam.ParDo(_PlanCommit(self.root, self.dates),
                                         beam.pvalue.AsSingleton(kept)).with_output_types(int)
        )
