"""Specifications of schemas.tables and schemas.athena: Athena-safe columns, rows, docs and DDL.

The engine check writes every table as a Hive-partitioned Parquet file and reads it back with
DuckDB, with the partition columns pinned to VARCHAR as Athena sees them (beam.md §4).  DuckDB is
lenient about types, so the type contract is checked by ``lint_schema`` and on the Parquet schema.
"""
from __future__ import annotations

from datetime import datetime, timezone

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from runners.local.conversation import SPEECH_DIR, read_wav_s16
from schemas import athena
from schemas.tables import (
    DESCRIPTION,
    PARTITION_COLUMNS,
    TABLES,
    TIMESTAMP,
    athena_type,
    col,
    describe_markdown,
    lint_schema,
    rows_to_table,
    table,
)
from voicelake.analysis.features import analyse_call
from voicelake.audio import Gap

T0 = 1_715_698_800_000  # 2024-05-14T15:00:00Z


def test_every_table_passes_the_lint():
    assert list(TABLES) == ["calls", "channels", "segments", "gaps", "phases", "failures"]
    for schema in TABLES.values():
        lint_schema(schema)
    # the partition columns live only in the DDL: same rules for their comments
    lint_schema(table("partitions", *(col(f"p_{n}", pa.string(), text) for n, text in PARTITION_COLUMNS)))


FORBIDDEN = [
    pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64(), pa.int8(), pa.int16(), pa.float16(),
    pa.timestamp("ns"), pa.timestamp("us", tz="UTC"), pa.timestamp("s", tz="UTC"),
    pa.timestamp("ms"), pa.timestamp("ms", tz="Europe/Paris"), pa.time32("ms"), pa.time64("us"),
    pa.null(), pa.date32(), pa.large_string(), pa.string_view(), pa.binary(),
    pa.dictionary(pa.int32(), pa.string()), pa.large_list(pa.int32()), pa.decimal128(10, 2),
    pa.map_(pa.string(), pa.int64()), pa.list_(pa.uint8()),
]


@pytest.mark.parametrize("bad", FORBIDDEN, ids=str)
def test_lint_rejects_each_forbidden_type(bad):
    schema = table("t", col("ok", pa.int64(), "fine"), col("bad", bad, "not fine"))
    with pytest.raises(ValueError) as e:
        lint_schema(schema)
    assert str(e.value) == f"schema not Athena-safe:\n  bad: type {bad} is not Athena-safe"


def test_lint_reports_nested_fields_descriptions_and_partition_columns():
    inner = pa.struct([pa.field("start_ms", pa.int64()), pa.field("loss", pa.float16())])
    schema = pa.schema([
        col("spans", inner, "nested"),
        pa.field("plain", pa.string()),
        col("quoted", pa.string(), "the caller's side"),
        col("long", pa.string(), "x" * 256),
        col("date", pa.string(), "the day"),
    ])
    with pytest.raises(ValueError) as e:
        lint_schema(schema)
    assert str(e.value).splitlines()[1:] == [
        "  spans: type struct<start_ms: int64, loss: halffloat> is not Athena-safe",
        "  spans.loss: type halffloat is not Athena-safe",
        "  plain: no description",
        "  quoted: description longer than 255 characters or containing a quote or backslash",
        "  long: description longer than 255 characters or containing a quote or backslash",
        "  date: partition column; the folder carries it, not the file",
    ]


def test_athena_types_of_the_allowed_arrow_types():
    assert [athena_type(t) for t in (pa.bool_(), pa.int32(), pa.int64(), pa.float32(),
                                     pa.float64(), pa.string(), TIMESTAMP)] == \
        ["boolean", "int", "bigint", "float", "double", "string", "timestamp"]
    nested = pa.list_(pa.struct([pa.field("start_ms", pa.int64()), pa.field("tags", pa.list_(pa.string()))]))
    assert athena_type(nested) == "array<struct<start_ms:bigint,tags:array<string>>>"


def test_rows_to_table_fills_nulls_in_schema_order():
    t = rows_to_table("failures", [
        {"reason": "bad_json", "stage": "records", "detail": "line 3", "source_offset": 12},
        {"stage": "media", "reason": "fragment_not_found", "detail": "x", "call_id": "c-1"},
    ])
    assert t.schema == TABLES["failures"]
    assert t.to_pylist() == [
        {"stage": "records", "reason": "bad_json", "detail": "line 3", "source": None,
         "call_id": None, "source_key": None, "source_offset": 12, "kept": None},
        {"stage": "media", "reason": "fragment_not_found", "detail": "x", "source": None,
         "call_id": "c-1", "source_key": None, "source_offset": None, "kept": None},
    ]
    assert rows_to_table("gaps", []).num_rows == 0


def test_rows_to_table_refuses_unknown_and_missing_required_columns():
    with pytest.raises(ValueError, match=r"failures row 0: unknown columns \['stag'\]"):
        rows_to_table("failures", [{"stag": "records", "reason": "r", "detail": "d"}])
    with pytest.raises(ValueError, match="partition columns go in the folder path"):
        rows_to_table("failures", [{"stage": "s", "reason": "r", "detail": "d", "date": "2024-05-14"}])
    with pytest.raises(ValueError, match=r"failures row 1: required columns missing \['detail'\]"):
        rows_to_table("failures", [{"stage": "s", "reason": "r", "detail": "d"},
                                   {"stage": "s", "reason": "r", "detail": None}])
    with pytest.raises(KeyError):
        rows_to_table("nope", [])


def test_timestamps_from_epoch_ms_or_aware_datetimes_are_the_same():
    base = {"call_id": "c", "source": "chime", "end_time": T0 + 1}
    as_int = rows_to_table("calls", [{**base, "start_time": T0}])
    as_dt = rows_to_table("calls", [{**base, "start_time": datetime(2024, 5, 14, 15, tzinfo=timezone.utc)}])
    assert as_int.equals(as_dt)
    assert as_int.schema.field("start_time").type == pa.timestamp("ms", tz="UTC")


def test_describe_markdown_documents_every_column():
    text = describe_markdown()
    for name, schema in TABLES.items():
        assert f"\n### `{name}`\n\n{schema.metadata[DESCRIPTION].decode()}\n" in text
        for f in schema:
            assert f"| `{f.name}` | {athena_type(f.type)}" in text
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert len(rows) == sum(len(s) + len(PARTITION_COLUMNS) for s in TABLES.values())
    assert "| `start_time` | timestamp, not null | Start of the call window" in text
    assert "| `date` | string, partition | UTC day of the call" in text


GAPS_DDL = """\
CREATE EXTERNAL TABLE IF NOT EXISTS `voicelake`.`gaps` (
  `call_id` string COMMENT 'Amazon Connect ContactId or Chime Voice Connector TransactionId of the call.',
  `source` string COMMENT 'connect or chime: the record type the call came from, and so what call_id is.',
  `channel` int COMMENT 'Channel number, 0-based: the column of the call WAV.',
  `role` string COMMENT 'customer or agent, null when the records do not say.',
  `gap` int COMMENT '0-based index of the gap within its channel, in time order.',
  `start_ms` bigint COMMENT 'Start of the gap, ms after the call start_time (sample 0 of the WAV).',
  `end_ms` bigint COMMENT 'End of the gap (exclusive), ms after the call start_time.',
  `duration_ms` bigint COMMENT 'end_ms - start_ms.'
)
COMMENT 'One row per hole (longer than 1 ms) in the audio of a channel: missing fragments or lost media, present in the WAV as digital silence.'
PARTITIONED BY (
  `date` string COMMENT 'UTC day of the call (for failures: of the record), YYYY-MM-DD, from the folder date=... A reserved word: quote it as "date" in Athena, Trino and DuckDB, as `date` in Spark SQL and Hive.',
  `voice_connector_id` string COMMENT 'Chime Voice Connector ID, or the Amazon Connect instance ID for Connect calls, from the folder voice_connector_id=... (unknown for failures without one).'
)
STORED AS PARQUET
LOCATION 's3://example-lake/voicelake/gaps/'
TBLPROPERTIES (
  'projection.enabled'='true',
  'projection.date.type'='date',
  'projection.date.format'='yyyy-MM-dd',
  'projection.date.range'='2024-01-01,NOW',
  'projection.date.interval'='1',
  'projection.date.interval.unit'='DAYS',
  'projection.voice_connector_id.type'='enum',
  'projection.voice_connector_id.values'='rm781te85pogu1m8jgpdd4,unknown',
  'storage.location.template'='s3://example-lake/voicelake/gaps/date=${date}/voice_connector_id=${voice_connector_id}/'
);"""


def test_ddl_of_the_gaps_table_with_partition_projection():
    assert athena.create_table("gaps", TABLES["gaps"], "s3://example-lake/voicelake", "voicelake",
                               projection=True,
                               voice_connector_ids=["rm781te85pogu1m8jgpdd4", "unknown"]) == GAPS_DDL


def test_an_enum_projection_needs_its_values():
    with pytest.raises(ValueError, match="an enum projection needs at least one voice_connector_id"):
        athena.create_table("gaps", TABLES["gaps"], "s3://example-lake/voicelake", "voicelake",
                            projection=True)


def test_ddl_cli_prints_every_table_in_the_chosen_variant(capsys):
    assert athena.main(["--location", "s3://example-lake/voicelake/", "--variant", "projection",
                        "--voice-connector-ids", "rm781te85pogu1m8jgpdd4,unknown"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("CREATE DATABASE IF NOT EXISTS `voicelake`;\n\n")
    assert GAPS_DDL in out and "MSCK" not in out
    assert out.count("CREATE EXTERNAL TABLE") == len(TABLES)

    athena.main(["--location", "s3://example-lake/voicelake", "--variant", "msck", "--database", "cc"])
    out = capsys.readouterr().out
    assert "TBLPROPERTIES" not in out
    assert out.endswith("LOCATION 's3://example-lake/voicelake/failures/';\n\n"
                        "MSCK REPAIR TABLE `cc`.`failures`;\n")

    athena.main(["--location", "s3://example-lake/voicelake", "--variant", "both",
                 "--voice-connector-ids", "vc-a,vc-b", "--projection-start", "2025-02-01"])
    out = capsys.readouterr().out
    assert out.count("MSCK REPAIR TABLE") == out.count("'projection.enabled'='true'") == len(TABLES)
    assert "'projection.voice_connector_id.type'='enum',\n" \
           "  'projection.voice_connector_id.values'='vc-a,vc-b'," in out
    assert "'projection.date.range'='2025-02-01,NOW'" in out


def lake_folders(root, *partitions: tuple[str, str, str]) -> None:
    for table_name, date_, partition in partitions:
        folder = root / table_name / f"date={date_}" / f"voice_connector_id={partition}"
        folder.mkdir(parents=True)
        (folder / "part-00000.parquet").write_bytes(b"")


def test_ddl_projects_the_connectors_and_instances_the_lake_holds(tmp_path, capsys):
    lake_folders(tmp_path, ("calls", "2024-05-14", "vc-b"), ("calls", "2024-05-15", "inst-1"),
                 ("failures", "2024-05-14", "unknown"), ("audio", "2024-05-14", "vc-b"))
    (tmp_path / "calls/date=2024-05-14/voice_connector_id=emptied-by-a-rerun").mkdir()
    assert athena.lake_voice_connector_ids(str(tmp_path)) == ["inst-1", "unknown", "vc-b"]
    assert athena.main(["--location", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.count("'projection.voice_connector_id.values'='inst-1,unknown,vc-b'") == len(TABLES)
    assert f"LOCATION 'file://{tmp_path}/calls/'" in out


def test_ddl_reads_the_connectors_of_a_lake_on_s3(s3_server):
    client = s3_server.client()
    client.create_bucket(Bucket="ddl-lake")
    for key in ("v/calls/date=2024-05-14/voice_connector_id=vc-a/part-00000.parquet",
                "v/calls/date=2024-05-15/voice_connector_id=inst-9/part-00000.parquet",
                "v/failures/date=2024-05-15/voice_connector_id=unknown/part-00000.parquet",
                "v/audio/date=2024-05-15/voice_connector_id=not-a-table/x.wav"):
        client.put_object(Bucket="ddl-lake", Key=key, Body=b"")
    assert athena.lake_voice_connector_ids("s3://ddl-lake/v") == ["inst-9", "unknown", "vc-a"]


def test_ddl_on_a_lake_without_partitions_says_what_to_do(tmp_path, capsys):
    assert athena.main(["--location", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"voicelake ddl: no voice_connector_id=... partitions under file://{tmp_path} yet: run the "
        "pipeline first, or name the connectors and instances with --voice-connector-ids, or use "
        "--variant msck\n")
    assert athena.main(["--location", str(tmp_path), "--variant", "msck"]) == 0


@pytest.mark.parametrize("variant, dialect", [("projection", "athena"), ("msck", "athena"),
                                              ("both", "athena"), ("projection", "trino")])
def test_a_semicolon_ends_each_statement_and_appears_nowhere_else(variant, dialect, capsys):
    athena.main(["--location", "s3://example-lake/voicelake", "--variant", variant,
                 "--dialect", dialect, "--voice-connector-ids", "vc-a"])
    out = capsys.readouterr().out
    statements = [s.strip() for s in out.split(";") if s.strip()]
    starts = {"projection": ["CREATE"] * 7, "msck": ["CREATE"] + ["CREATE", "MSCK"] * 6}
    starts["both"] = starts["msck"]
    assert [s.split()[0] for s in statements] == starts[variant]
    assert all(s.rstrip().endswith(";") for s in out.split("\n\n"))


def test_trino_ddl_of_the_gaps_table():
    ddl = athena.trino_create_table("gaps", TABLES["gaps"], "file:///lake", "voicelake",
                                    catalog="awsdatacatalog", voice_connector_ids=["vc-a", "unknown"])
    assert ddl.splitlines()[:3] == [
        'CREATE TABLE IF NOT EXISTS "awsdatacatalog"."voicelake"."gaps" (',
        "  \"call_id\" varchar COMMENT 'Amazon Connect ContactId or Chime Voice Connector "
        "TransactionId of the call.',",
        "  \"source\" varchar COMMENT 'connect or chime: the record type the call came from, and so "
        "what call_id is.',",
    ]
    assert "\"gap\" integer COMMENT" in ddl and "\"start_ms\" bigint COMMENT" in ddl
    assert "\"voice_connector_id\" varchar COMMENT 'Chime Voice Connector ID, or the Amazon Connect " \
           "instance ID for Connect calls, from the folder voice_connector_id=... (unknown for " \
           "failures without one).' WITH (partition_projection_type='ENUM', " \
           "partition_projection_values=ARRAY['vc-a', 'unknown'])" in ddl
    assert ddl.splitlines()[-7:] == [
        "WITH (",
        "  external_location = 'local:///lake/gaps',",
        "  format = 'PARQUET',",
        "  partitioned_by = ARRAY['date', 'voice_connector_id'],",
        "  partition_projection_enabled = true,",
        "  partition_projection_location_template = "
        "'local:///lake/gaps/date=${date}/voice_connector_id=${voice_connector_id}/'",
        ");",
    ]
    assert [athena.trino_type(t) for t in (pa.bool_(), pa.int32(), pa.float32(), TIMESTAMP,
                                          pa.list_(pa.struct([pa.field("a", pa.int64())])))] == \
        ["boolean", "integer", "real", "timestamp(3)", "array(row(a bigint))"]


def test_partitions_sql_adds_each_written_partition_once_per_table():
    assert athena.add_partitions("s3://lake/v", "voicelake", {
        "calls": [("2024-05-14", "vc-b"), ("2024-05-14", "vc-a"), ("2024-05-14", "vc-a")],
        "gaps": [],
    }) == ["ALTER TABLE `voicelake`.`calls` ADD IF NOT EXISTS\n"
           "  PARTITION (`date` = '2024-05-14', `voice_connector_id` = 'vc-a') "
           "LOCATION 's3://lake/v/calls/date=2024-05-14/voice_connector_id=vc-a/'\n"
           "  PARTITION (`date` = '2024-05-14', `voice_connector_id` = 'vc-b') "
           "LOCATION 's3://lake/v/calls/date=2024-05-14/voice_connector_id=vc-b/';"]


def test_ddl_location_is_s3_or_a_local_path(tmp_path):
    assert athena.location_uri("s3://bucket.name/a/b/") == "s3://bucket.name/a/b"
    assert athena.location_uri("s3://bucket") == "s3://bucket"
    assert athena.location_uri(str(tmp_path / "lake")) == f"file://{tmp_path}/lake"
    for bad in ("http://bucket/x", "gs://bucket", "s3://B/x", "s3://b/x", "s3://bucket/a'b",
                "s3://bucket/a//b", ""):
        with pytest.raises(ValueError):
            athena.location_uri(bad)


@pytest.mark.parametrize("argv", [
    [],
    ["--location", "http://x/y"],
    ["--location", "s3://bucket/x", "--database", "Bad-Name"],
    ["--location", "s3://bucket/x", "--variant", "glue"],
    ["--location", "s3://bucket/x", "--projection-start", "2024-5-1"],
    ["--location", "s3://bucket/x", "--voice-connector-ids", "a,b c"],
    ["--location", "s3://bucket/x", "--voice-connector-ids", "a", "--dialect", "trino",
     "--variant", "msck"],
])
def test_ddl_cli_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as e:
        athena.main(argv)
    assert e.value.code == 2
    assert "usage: voicelake ddl" in capsys.readouterr().err


# ---- engine check -------------------------------------------------------------------------------

def sample_rows() -> dict[str, list[dict]]:
    """A couple of rows for every table, the feature rows straight from analyse_call (the default
    VAD, on a speech clip: every column, non_speech_ms included, holds a value)."""
    clip = read_wav_s16(SPEECH_DIR / "agent_00.wav")
    x = np.zeros(len(clip) + 16000, dtype=np.int16)
    x[4000:4000 + len(clip)] = clip
    result = analyse_call([x, np.roll(x, 6000)], 8000, ["customer", "agent"], start_ms=T0,
                          gaps=[[Gap(T0 + 100, T0 + 164)], [Gap(T0 + 1900, T0 + 2000)]])
    calls = [{"call_id": f"call-{i}", "source": "connect", "start_time": T0 + i,
              "end_time": T0 + 2000 + i, "channel_map": "0=customer,1=agent", "sample_rate": 8000,
              "target_sample_rate": 16000, "wav_path": None, "fragments": 2, "missing_fragments": 0,
              "partial": bool(i), "bytes_fetched": 65536, "source_key": "ctr/1", **result.call}
             for i in range(2)]
    identity = {"call_id": "call-0", "source": "connect"}
    return {
        "calls": calls,
        "channels": [{**identity, "stream_arn": "arn:aws:kinesisvideo:s/1", **r} for r in result.channels],
        "segments": [{**identity, **r} for r in result.segments],
        "gaps": [{**identity, **r} for r in result.gaps],
        "failures": [
            {"stage": "records", "reason": "bad_json", "detail": "line 3", "source": "chime",
             "source_key": "sdr/a.json", "source_offset": 120},
            {"stage": "media", "reason": "fragment_not_found", "detail": "3000", "call_id": "c-9"},
        ],
    }


def test_every_table_round_trips_through_hive_partitioned_parquet_and_duckdb(tmp_path):
    rows_by_table = sample_rows()
    assert all(len(rows) >= 2 for rows in rows_by_table.values())
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    for name, rows in rows_by_table.items():
        folder = tmp_path / name / "date=2024-05-14" / "voice_connector_id=abc"
        folder.mkdir(parents=True)
        pq.write_table(rows_to_table(name, rows), folder / "part-00000.parquet", compression="snappy")

        stored = pq.read_schema(folder / "part-00000.parquet")
        assert stored.names == TABLES[name].names  # no partition columns in the file
        assert stored.remove_metadata().equals(TABLES[name].remove_metadata())

        result = con.execute(
            f"SELECT * FROM read_parquet('{tmp_path / name}/*/*/*.parquet', hive_partitioning=true,"
            " hive_types={'date': 'VARCHAR', 'voice_connector_id': 'VARCHAR'})")
        columns = [d[0] for d in result.description]
        got = [dict(zip(columns, values, strict=True)) for values in result.fetchall()]
        want = [{**{f.name: _as_read(f, row.get(f.name)) for f in TABLES[name]},
                 "date": "2024-05-14", "voice_connector_id": "abc"} for row in rows]
        leading = TABLES[name].names[:4]

        def key(r, leading=leading):
            return tuple(str(r[k]) for k in leading)
        assert sorted(got, key=key) == sorted(want, key=key), name


def _as_read(field: pa.Field, value):
    """What DuckDB gives back for a value the pipeline wrote: epoch ms become UTC datetimes."""
    if field.type == TIMESTAMP and value is not None:
        return datetime.fromtimestamp(value / 1000, tz=timezone.utc)
    return value
