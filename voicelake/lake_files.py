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

import heapq
import io
import logging
from collections.abc import Iterable, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from schemas import tables
from voicelake import layout, storage
from voicelake.model import CallRows

log = logging.getLogger(__name__)
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


def merged_parquet_files(root: str, table: str, calls: Iterable[CallRows],
                         kept: Iterable[tuple[tuple[str, str], pa.Table]] = ()) -> Iterator[bytes]:
    """One partition's Parquet files from its calls' shards, read one at a time, and the rows an
    earlier run landed for calls this run keeps (``kept_parts``), merged in call order."""
    landed = (((c.call_id, c.source), c) for c in merge_order(c for c in calls if table in c.tables))
    merged = heapq.merge(((key, 0, part) for key, part in kept),
                         ((key, 1, call) for key, call in landed), key=lambda item: item[:2])
    return parquet_files_of(table, (part if origin == 0 else decode_shard(storage.read_bytes(
        shard_path(root, table, part))) for _, origin, part in merged))


# ---- what an earlier run landed ----------------------------------------------------------------

def landed_files(root: str, table: str, date: str, partition: str) -> list[str]:
    """The partition's Parquet files as the lake holds them now, in file order."""
    return sorted(storage.list_paths(layout.table_files(root, table, date, partition)))


def kept_parts(table: str, paths: Iterable[str], landed_now: set[str]
               ) -> Iterator[tuple[tuple[str, str], pa.Table]]:
    """The rows of an earlier run's files whose call this run did not land, as ((call_id, source),
    rows) in file order, one row group in memory at a time, in today's schema (columns added
    since are null)."""
    schema = tables.TABLES[table]
    for path in paths:
        with storage.readable(path) as local:
            try:
                parquet = pq.ParquetFile(local)
            except pa.ArrowInvalid:  # not Parquet at all (put there by hand): no landing to keep
                log.warning("%s is not a Parquet file: it holds no calls to keep", path)
                continue
            for g in range(parquet.num_row_groups):
                group = parquet.read_row_group(g)
                keep = pc.invert(pc.is_in(group.column("call_id"), pa.array(sorted(landed_now), pa.string())))
                yield from _by_call(_conformed(group.filter(keep), schema))


def _conformed(group: pa.Table, schema: pa.Schema) -> pa.Table:
    columns = [group.column(f.name).cast(f.type) if f.name in group.column_names
               else pa.nulls(group.num_rows, f.type) for f in schema]
    return pa.Table.from_arrays(columns, schema=schema)


def _by_call(group: pa.Table) -> Iterator[tuple[tuple[str, str], pa.Table]]:
    """Slices of consecutive rows of one (call_id, source)."""
    ids, sources = group.column("call_id").to_pylist(), group.column("source").to_pylist()
    start = 0
    for i in range(1, len(ids) + 1):
        if i == len(ids) or (ids[i], sources[i]) != (ids[start], sources[start]):
            yield (ids[start], sources[start]), group.slice(start, i - start)
            start = i


def kept_calls(parts: Iterable[tuple[tuple[str, str], pa.Table]]) -> list[tuple[str, str]]:
    """The (call_id, source) of the kept rows, once each, in order."""
    return list(dict.fromkeys(key for key, _ in parts))
