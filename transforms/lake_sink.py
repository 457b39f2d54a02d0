"""Rows and WAVs -> the lake: Hive-partitioned Parquet with deterministic names, and no stale files.

Beam's WriteToParquet / fileio.WriteToFiles lose rows on Hive paths or duplicate them when a re-run
shards differently (beam.md §3), so every (table, date, partition) is grouped and written by one
DoFn under fixed names ``part-00000.parquet``...; a final step deletes whatever a previous run left
under the run's dates that this run did not write.  A re-run of a date therefore leaves exactly the
same files with the same bytes.
"""
from __future__ import annotations

import io

import apache_beam as beam
import pyarrow.parquet as pq
from apache_beam.metrics import Metrics

from voicelake import layout, storage
from schemas import tables

NAMESPACE = "voicelake.lake"
ROWS_PER_FILE = 200_000
SORT_KEYS = {
    "calls": ("call_id",),
    "channels": ("call_id", "channel"),
    "segments": ("call_id", "channel", "start_ms"),
    "gaps": ("call_id", "channel", "start_ms"),
    "failures": ("stage", "reason", "source_key", "source_offset", "call_id"),
}


def _sort_value(value):
    return (value is None, "" if value is None else value)


def parquet_files(table: str, rows: list[dict]) -> list[bytes]:
    """Deterministic Parquet bytes for one partition's rows, split into files of ROWS_PER_FILE."""
    keys = SORT_KEYS[table]
    ordered = sorted(rows, key=lambda r: tuple(_sort_value(r.get(k)) for k in keys))
    files = []
    for start in range(0, max(len(ordered), 1), ROWS_PER_FILE):
        buffer = io.BytesIO()
        pq.write_table(tables.rows_to_table(table, ordered[start:start + ROWS_PER_FILE]), buffer,
                       compression="snappy")
        files.append(buffer.getvalue())
    return files


class _WritePartition(beam.DoFn):
    def __init__(self, root: str):
        self.root = root
        self.files = Metrics.counter(NAMESPACE, "parquet_files")
        self.partial_calls = Metrics.counter(NAMESPACE, "partial_calls")  # the summary's partial_calls

    def process(self, element):
        (table, date, partition), rows = element
        rows = list(rows)
        if table == "calls":
            self.partial_calls.inc(sum(1 for row in rows if row.get("partial")))
        for n, data in enumerate(parquet_files(table, rows)):
            path = layout.table_file(self.root, table, date, partition, n)
            storage.write_bytes(path, data)
            self.files.inc()
            yield path


class _RemoveStale(beam.DoFn):
    """Delete every file under the run's dates that this run did not write, at any depth (a
    previous run's leftovers, or strays put there by hand), and the run's scratch folders.

    Only ``<root>/<table or audio>/date=<d>/`` and ``<root>/_work/date=<d>/`` of the run's own
    dates are looked at, so other dates and anything else under the root are never touched.
    """

    def __init__(self, root: str, dates: list[str]):
        self.root, self.dates = root, dates
        self.removed = Metrics.counter(NAMESPACE, "stale_files_removed")

    def process(self, written: list[str]):
        keep = set(written)
        stale = []
        for date in self.dates:
            for table in (*tables.TABLES, layout.AUDIO):
                stale += [path for path in storage.list_tree(layout.date_dir(self.root, table, date))
                          if path not in keep]
        if stale:
            storage.delete(sorted(stale))
            self.removed.inc(len(stale))
        for date in self.dates:  # every call of the run is written: its channel files are done
            storage.delete_tree(layout.scratch_date_dir(self.root, date))
        yield len(stale)


class WriteLake(beam.PTransform):
    """(table, date, partition, row) and written WAV paths -> Parquet partitions, stale files removed."""

    def __init__(self, root: str, dates: list[str]):
        super().__init__()
        self.root, self.dates = root, dates

    def expand(self, inputs):
        rows, wav_paths = inputs
        parquet = (
            rows
            | "ByPartition" >> beam.Map(lambda r: ((r[0], r[1], r[2]), r[3]))
            | "GroupPartitions" >> beam.GroupByKey()
            | "WritePartitions" >> beam.ParDo(_WritePartition(self.root))
        )
        return (
            (parquet, wav_paths)
            | "AllWritten" >> beam.Flatten()
            | "CollectWritten" >> beam.combiners.ToList()
            | "RemoveStale" >> beam.ParDo(_RemoveStale(self.root, self.dates))
        )
