"""A partition's Parquet files are made from its calls' row shards one at a time, and are the same
files, byte for byte, as writing all the partition's rows at once: the sink never holds a night."""
import io
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from voicelake import lake_files
from voicelake.model import CallRows


def segment_rows(calls: int, seed: int = 3) -> list[dict]:
    rng = random.Random(seed)
    return [{"call_id": f"call-{rng.randrange(calls):03d}", "source": "connect", "channel": rng.randrange(2),
             "role": "agent", "segment": i, "start_ms": rng.randrange(10**6), "end_ms": 1, "duration_ms": 1,
             "rms_dbfs": -20.0, "peak_dbfs": None, "phase": "agent"} for i in range(5000)]


def by_call(rows):
    out = {}
    for row in rows:
        out.setdefault(row["call_id"], []).append(row)
    return out


def written_rows(files: list[bytes]) -> list[dict]:
    return pa.concat_tables([pq.read_table(io.BytesIO(f)) for f in files]).to_pylist()


def test_shards_merged_in_call_order_are_the_partition_written_at_once():
    rows = segment_rows(40)
    shards = [lake_files.decode_shard(lake_files.encode_shard("segments", call_rows))
              for _, call_rows in sorted(by_call(rows).items())]
    assert list(lake_files.parquet_files_of("segments", shards)) == lake_files.parquet_files("segments", rows)


def test_a_big_partition_is_split_into_fixed_row_groups_and_files(monkeypatch):
    monkeypatch.setattr(lake_files, "ROW_GROUP_ROWS", 400)
    monkeypatch.setattr(lake_files, "ROWS_PER_FILE", 1200)
    rows = segment_rows(40)
    shards = [lake_files.decode_shard(lake_files.encode_shard("segments", r)) for _, r in sorted(by_call(rows).items())]
    files = list(lake_files.parquet_files_of("segments", shards))
    assert [pq.ParquetFile(io.BytesIO(f)).metadata.num_rows for f in files] == [1200, 1200, 1200, 1200, 200]
    assert {pq.ParquetFile(io.BytesIO(f)).metadata.row_group(0).num_rows for f in files[:-1]} == {400}
    assert written_rows(files) == lake_files.sort_rows("segments", rows)
    # shard boundaries do not matter: the same rows in other pieces give the same bytes
    whole = [lake_files.decode_shard(lake_files.encode_shard("segments", rows))]
    assert list(lake_files.parquet_files_of("segments", whole)) == files


def test_a_partition_without_rows_is_one_empty_file_of_the_tables_schema():
    (only,) = lake_files.parquet_files_of("gaps", [])
    table = pq.read_table(io.BytesIO(only))
    assert table.num_rows == 0 and table.schema.names == lake_files.tables.TABLES["gaps"].names


def test_a_bad_row_is_refused_when_its_call_writes_it():
    with pytest.raises(ValueError, match="unknown columns"):
        lake_files.encode_shard("calls", [{"call_id": "c", "source": "connect", "nonsense": 1}])


def test_a_landed_calls_note_names_the_tables_it_has_rows_in_and_its_shards_read_back(tmp_path):
    rows = by_call(segment_rows(3))
    note = lake_files.write_call_rows(str(tmp_path), date="2024-05-14", partition="vc1", source="connect",
                                      call_id="call-001", rows={"segments": rows["call-001"], "gaps": []},
                                      wavs=["/l/a.wav"], partial=False)
    assert note == CallRows("2024-05-14", "vc1", "connect", "call-001", ("segments",), ("/l/a.wav",), False)
    (data,) = lake_files.merged_parquet_files(str(tmp_path), "segments", [note])
    assert written_rows([data]) == lake_files.sort_rows("segments", rows["call-001"])


def test_calls_are_merged_by_id_then_source_whatever_order_they_arrive_in():
    notes = [CallRows("d", "p", source, call_id, (), (), False)
             for call_id, source in (("b", "connect"), ("a", "connect"), ("a", "chime"))]
    assert [(n.call_id, n.source) for n in lake_files.merge_order(notes)] == \
        [("a", "chime"), ("a", "connect"), ("b", "connect")]
