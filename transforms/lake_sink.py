"""Landed calls and failure rows -> the lake: Hive-partitioned Parquet with deterministic names,
and no stale files.

Beam's WriteToParquet / fileio.WriteToFiles lose rows on Hive paths or duplicate them when a re-run
shards differently (beam.md §3), so every (table, date, partition) is grouped and written by one
DoFn under fixed names ``part-00000.parquet``...  What is grouped is small: a landed call's rows
already wait in row shards in the scratch (``voicelake.lake_files``), and only its ``CallRows``
note crosses the shuffle, so neither the runner nor a worker holds a night's rows.  Failures are
few and come from every stage; they travel as rows.

Each partition's writer also removes whatever else is in its folder (and, for ``calls``, in the
partition's audio folder beyond the calls' WAVs); a last step, given only which partitions were
written, removes every other partition folder and stray file under the run's dates, and the run's
scratch.  A re-run of a date therefore leaves exactly the same files with the same bytes.
"""
from __future__ import annotations

import apache_beam as beam
from apache_beam.metrics import Metrics

from schemas import tables
from voicelake import lake_files, layout, storage
from voicelake.layout import Partition
from voicelake.model import CallRows

NAMESPACE = "voicelake.lake"


def remove_unwritten(folder: str, keep: set[str]) -> int:
    """Delete every file below ``folder``, at any depth, that is not in ``keep``."""
    stale = [path for path in storage.list_tree(folder) if path not in keep]
    if stale:
        storage.delete(stale)
    return len(stale)


class _WritePartitions(beam.DoFn):
    """((table, date, partition), calls' notes or failure rows) -> its Parquet files; yields the
    partitions it wrote (for ``calls``, the audio partition too)."""

    def __init__(self, root: str):
        self.root = root
        self.files = Metrics.counter(NAMESPACE, "parquet_files")
        self.partial_calls = Metrics.counter(NAMESPACE, "partial_calls")  # the summary's partial_calls
        self.removed = Metrics.counter(NAMESPACE, "stale_files_removed")

    def process(self, element):
        (table, date, partition), values = element
        values = list(values)
        if table == "failures":
            files = lake_files.parquet_files(table, values)
        else:
            files = lake_files.merged_parquet_files(self.root, table, values)
        written = set()
        for n, data in enumerate(files):
            path = layout.table_file(self.root, table, date, partition, n)
            storage.write_bytes(path, data)
            written.add(path)
            self.files.inc()
        removed = remove_unwritten(layout.partition_dir(self.root, table, date, partition), written)
        yield Partition(table, date, partition)
        if table == "calls":
            self.partial_calls.inc(sum(1 for call in values if call.partial))
            wavs = {path for call in values for path in call.wavs}
            removed += remove_unwritten(layout.partition_dir(self.root, layout.AUDIO, date, partition), wavs)
            yield Partition(layout.AUDIO, date, partition)
        if removed:
            self.removed.inc(removed)


class _RemoveStale(beam.DoFn):
    """Delete every file under the run's dates outside the partitions this run wrote, at any depth
    (a previous run's partitions, or strays put there by hand), and the run's scratch folders.

    Only ``<root>/<table or audio>/date=<d>/`` and ``<root>/_work/date=<d>/`` of the run's own
    dates are looked at, so other dates and anything else under the root are never touched.
    """

    def __init__(self, root: str, dates: list[str]):
        self.root, self.dates = root, dates
        self.removed = Metrics.counter(NAMESPACE, "stale_files_removed")

    def process(self, written: list[Partition]):
        keep = set(written)
        stale = []
        for date in self.dates:
            for folder in (*tables.TABLES, layout.AUDIO):
                stale += [path for path in storage.list_tree(layout.date_dir(self.root, folder, date))
                          if layout.partition_of(self.root, path) not in keep]
        if stale:
            storage.delete(sorted(stale))
            self.removed.inc(len(stale))
        for date in self.dates:  # every call of the run is written: its channel files and rows are done
            storage.delete_tree(layout.scratch_date_dir(self.root, date))
        yield len(stale)


def _by_table_partition(call: CallRows):
    return [((table, call.date, call.partition), call) for table in call.tables]


@beam.typehints.with_output_types(int)
class WriteLake(beam.PTransform):
    """(landed calls' ``CallRows``, failure rows ``(table, date, partition, row)``) -> Parquet
    partitions and WAV folders with nothing stale; outputs how many stale files the last step
    removed."""

    def __init__(self, root: str, dates: list[str]):
        super().__init__()
        self.root, self.dates = root, dates

    def expand(self, inputs):
        calls, failure_rows = inputs
        keyed = (
            (calls | "ByCallPartition" >> beam.FlatMap(_by_table_partition)
             .with_output_types(tuple[tuple[str, str, str], CallRows]),
             failure_rows | "ByFailurePartition" >> beam.Map(lambda r: ((r[0], r[1], r[2]), r[3]))
             .with_output_types(tuple[tuple[str, str, str], dict]))
            | "AllPartitions" >> beam.Flatten()
        )
        return (
            keyed
            | "GroupPartitions" >> beam.GroupByKey()
            | "WritePartitions" >> beam.ParDo(_WritePartitions(self.root))
            | "CollectWritten" >> beam.combiners.ToList()
            | "RemoveStale" >> beam.ParDo(_RemoveStale(self.root, self.dates)).with_output_types(int)
        )
