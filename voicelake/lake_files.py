"""The lake's Parquet files, made so that no process ever holds a night's rows.

The per-call stage writes each call's rows of each table as a small Arrow IPC *row shard* in the
run's scratch (``layout.row_shard``), already in the table's sort order, and passes on only a
``CallRows`` note.  The sink then merges one partition's shards in (call_id, source) order into the
partition's Parquet files: every table's sort key begins with call_id, so shard after shard is the
whole partition in order, and memory holds one row group at a time, however big the night.

Files and row groups have fixed sizes, so a re-run writes the same bytes whatever the runner's
bundling: the only inputs are the rows themselves.
"""
from __future__ import annotations

import io
from collections.abc import Iterable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from schemas import tables
from voicelake import layout, storage
from voicelake.model import CallRows

ROWS_PER_FILE = 200_000
ROW_GROUP_ROWS = 50_000  # ROWS_PER_FILE is a multiple: a file is whole row groups
SORT_KEYS = {
    "calls": ("call_id",),
    "channels": ("call_id", "channel"),
    "segments": ("call_id", "channel", "start_ms"),
    "gaps": ("call_id", "channel", "start_ms"),
    "phases": ("call_id", "start_ms", "phase"),
    "failures": ("stage", "reason", "source_key", "source_offset", "call_id"),
}
CALL_TABLES = ("calls", "channels", "segments", "gaps", "phases")  # the tables a landed call has rows in


def _sort_value(value):
    return (value is None, "" if value is None else value)


def sort_rows(table: str, rows: list[dict]) -> list[dict]:
    keys = SORT_KEYS[table]
    return sorted(rows, key=lambda r: tuple(_sort_value(r.get(k)) for k in keys))


# ---- a call's rows -> its shards ---------------------------------------------------------------

def encode_shard(table: str, rows: list[dict]) -> bytes:
    """One call's rows of one table, sorted, as Arrow IPC in the table's schema (checked here, at
    the call that made them, so a bad row names its call)."""
    data = tables.rows_to_table(table, sort_rows(table, rows))
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, data.schema) as writer:
        writer.write_table(data)
    return sink.getvalue()


def decode_shard(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(data).read_all()


def write_call_rows(root: str, *, date: str, partition: str, source: str, call_id: str,
                    rows: dict[str, list[dict]], wavs: Iterable[str], partial: bool) -> CallRows:
    """Write a landed call's shards (one per table that has rows) and return what the sink needs."""
    note = CallRows(date=date, partition=partition, source=source, call_id=call_id,
                    tables=tuple(t for t in CALL_TABLES if rows.get(t)), wavs=tuple(wavs), partial=partial)
    for table in note.tables:
        storage.write_bytes(shard_path(root, table, note), encode_shard(table, rows[table]))
    return note


def shard_path(root: str, table: str, call: CallRows) -> str:
    return layout.row_shard(root, table, call.date, call.partition, call.source, call.call_id)


def merge_order(calls: Iterable[CallRows]) -> list[CallRows]:
    """The order shards are concatenated in: the tables' leading sort key, then source, so calls
    that share an id across sources still have one order."""
    return sorted(calls, key=lambda c: (c.call_id, c.source))


# ---- rows -> Parquet files ---------------------------------------------------------------------

def _row_groups(parts: Iterable[pa.Table]) -> Iterator[pa.Table]:
    """The rows of ``parts`` regrouped into tables of ROW_GROUP_ROWS (the last one shorter)."""
    pending, rows = [], 0
    for part in parts:
        pending.append(part)
        rows += part.num_rows
        while rows >= ROW_GROUP_ROWS:
            joined = pa.concat_tables(pending).combine_chunks()
            yield joined.slice(0, ROW_GROUP_ROWS)
            pending, rows = [joined.slice(ROW_GROUP_ROWS)], rows - ROW_GROUP_ROWS
    if rows:
        yield pa.concat_tables(pending).combine_chunks()


def parquet_files_of(table: str, parts: Iterable[pa.Table]) -> Iterator[bytes]:
    """Parquet bytes of the rows of ``parts`` (already in order), in files of ROWS_PER_FILE rows
    and row groups of ROW_GROUP_ROWS, one file at a time; no rows at all give one empty file."""
    schema = tables.TABLES[table]
    groups_per_file = ROWS_PER_FILE // ROW_GROUP_ROWS
    buffer, writer, groups, files = None, None, 0, 0
    for group in _row_groups(parts):
        if writer is None:
            buffer = io.BytesIO()
            writer = pq.ParquetWriter(buffer, schema, compression="snappy")
        writer.write_table(group, row_group_size=ROW_GROUP_ROWS)
        groups += 1
        if groups % groups_per_file == 0:
            writer.close()
            writer, files = None, files + 1
            yield buffer.getvalue()
    if writer is not None:
        writer.close()
        yield buffer.getvalue()
    elif files == 0:
        buffer = io.BytesIO()
        pq.write_table(schema.empty_table(), buffer, compression="snappy")
        yield buffer.getvalue()


def parquet_files(table: str, rows: list[dict]) -> list[bytes]:
    """The same for rows in memory (the failures table: few, from every stage)."""
    return list(parquet_files_of(table, [tables.rows_to_table(table, sort_rows(table, rows))]))


def merged_parquet_files(root: str, table: str, calls: Iterable[CallRows]) -> Iterator[bytes]:
    """One partition's Parquet files from its calls' shards, read one at a time."""
    shards = (decode_shard(storage.read_bytes(shard_path(root, table, call)))
              for call in merge_order(c for c in calls if table in c.tables))
    return parquet_files_of(table, shards)
