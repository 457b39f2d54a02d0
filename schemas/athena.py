"""``voicelake ddl``: CREATE TABLE statements for every lake table, from schemas.tables.

Variants (shared/domain/beam.md §4):
  projection  partition projection: no partition maintenance; ``date`` is projected as a date
              range and ``voice_connector_id`` as an ``enum`` of the connectors and instances the
              lake holds (read from its folders, or given with --voice-connector-ids), so a query
              without any partition filter works.  Not ``injected``: Athena then refuses every
              query that does not pin the connector with = or IN (CONSTRAINT_VIOLATION).
  msck        a plain partitioned table plus ``MSCK REPAIR TABLE``, re-run after each pipeline run.
  both        projection properties for Athena, and MSCK REPAIR too, so engines that ignore
              projection (Spark, Hive, Glue jobs) see the partitions in the catalog.

Dialects: ``athena`` (Hive DDL, which Athena and Spark SQL read) and ``trino`` (Trino's own
``CREATE TABLE ... WITH (external_location, partitioned_by, partition_projection_*)`` for a Trino
with a Hive metastore; tests/test_trino.py registers the tables with it).  The output splits on
``;`` into its statements: no ``;`` appears anywhere else, not even in a COMMENT.
"""
from __future__ import annotations

import argparse
import re
import sys
from datetime import date
from pathlib import Path

import pyarrow as pa

from schemas.tables import PARTITION_COLUMNS, TABLES, athena_type, description, lint_schema
from voicelake import layout

VARIANTS = ("projection", "msck", "both")
DIALECTS = ("athena", "trino")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_SAFE_PATH = re.compile(r"^[A-Za-z0-9._~/=+@,-]*$")  # nothing that needs quoting in DDL
_DATABASE = re.compile(r"^[a-z_][a-z0-9_]{0,254}$")
_ID = re.compile(r"^[A-Za-z0-9_-]+$")


def location_uri(location: str) -> str:
    """``s3://bucket/prefix`` or a local path (-> ``file:///abs``), without a trailing slash."""
    if location.startswith("s3://"):
        bucket, _, prefix = location[len("s3://"):].partition("/")
        if not _BUCKET.match(bucket) or not _SAFE_PATH.match(prefix) or "//" in prefix:
            raise ValueError(f"not a valid S3 location: {location!r}")
        return f"s3://{bucket}/{prefix}".rstrip("/")
    if "://" in location or not location:
        raise ValueError(f"location must be s3://bucket/prefix or a local path: {location!r}")
    path = Path(location).resolve().as_posix()
    if not _SAFE_PATH.match(path):
        raise ValueError(f"local path has characters that need quoting: {path!r}")
    return "file://" + path.rstrip("/")


def comment(text: str) -> str:
    """A description as a COMMENT string: tools split scripts on ``;``, so none may sit inside."""
    return text.replace(";", ",")


def _columns(fields: list[tuple[str, str, str]]) -> str:
    return ",\n".join(f"  `{name}` {type_} COMMENT '{comment(text)}'" for name, type_, text in fields)


def _subfolders(folder: str, key: str) -> list[str]:
    """Values of the ``key=value`` sub-folders of a lake folder that hold something (one level)."""
    from voicelake import storage  # the lake is read only here, for the projection enum

    if storage.is_s3(folder):
        bucket, prefix = storage.split_s3(folder)
        pages = storage.s3().get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix, Delimiter="/")
        names = [p["Prefix"][len(prefix):-1] for page in pages for p in page.get("CommonPrefixes", [])]
    else:
        base = Path(folder)
        # an emptied folder (a partition a re-run removed) does not count
        names = [p.name for p in base.iterdir() if p.is_dir() and any(p.rglob("*.*"))] \
            if base.is_dir() else []
    return sorted(n.split("=", 1)[1] for n in names if n.startswith(f"{key}="))


def lake_voice_connector_ids(location: str) -> list[str]:
    """The voice_connector_id partition values the lake holds.

    Read from the folders of ``calls`` and ``failures`` only (the other tables' partitions are
    those of ``calls``), one listing per date, never one per object.
    """
    root = location.removeprefix("file://").rstrip("/")
    ids = {vc for table in ("calls", "failures")
           for day in _subfolders(f"{root}/{table}/", "date")
           for vc in _subfolders(f"{root}/{table}/date={day}/", "voice_connector_id")}
    return sorted(i for i in ids if _ID.match(i))


def _projection(table_location: str, projection_start: str,
                voice_connector_ids: list[str]) -> list[tuple[str, str]]:
    """Athena's partition projection settings, as table properties."""
    if not voice_connector_ids:
        raise ValueError("an enum projection needs at least one voice_connector_id")
    return [
        ("projection.enabled", "true"),
        ("projection.date.type", "date"),
        ("projection.date.format", "yyyy-MM-dd"),
        ("projection.date.range", f"{projection_start},NOW"),
        ("projection.date.interval", "1"),
        ("projection.date.interval.unit", "DAYS"),
        ("projection.voice_connector_id.type", "enum"),
        ("projection.voice_connector_id.values", ",".join(voice_connector_ids)),
        ("storage.location.template", layout.hive_template(table_location)),
    ]


def create_table(name: str, schema: pa.Schema, location: str, database: str, *,
                 projection: bool, projection_start: str = "2024-01-01",
                 voice_connector_ids: list[str] | None = None) -> str:
    """One CREATE EXTERNAL TABLE statement; ``location`` as returned by ``location_uri``."""
    lint_schema(schema)
    table_location = f"{location}/{name}/"
    lines = [
        f"CREATE EXTERNAL TABLE IF NOT EXISTS `{database}`.`{name}` (",
        _columns([(f.name, athena_type(f.type), description(f)) for f in schema]),
        ")",
        f"COMMENT '{description(schema)}'",
        "PARTITIONED BY (",
        _columns([(n, "string", text) for n, text in PARTITION_COLUMNS]),
        ")",
        "STORED AS PARQUET",
        f"LOCATION '{table_location}'",
    ]
    if projection:
        properties = _projection(table_location, projection_start, voice_connector_ids or [])
        lines += ["TBLPROPERTIES (", ",\n".join(f"  '{k}'='{v}'" for k, v in properties), ")"]
    return "\n".join(lines) + ";"


def trino_type(t: pa.DataType) -> str:
    """Trino's spelling of a column's Athena type (Athena's DML is Trino's: these are what it reads)."""
    if pa.types.is_list(t):
        return f"array({trino_type(t.value_type)})"
    if pa.types.is_struct(t):
        return "row(" + ", ".join(f"{f.name} {trino_type(f.type)}" for f in t) + ")"
    return {"string": "varchar", "int": "integer", "float": "real",
            "timestamp": "timestamp(3)"}.get(athena_type(t), athena_type(t))


def trino_location(location: str) -> str:
    """Trino's native local file system names local paths ``local://``; S3 stays as it is."""
    return "local://" + location.removeprefix("file://") if location.startswith("file://") else location


def trino_create_table(name: str, schema: pa.Schema, location: str, database: str, *,
                       catalog: str, projection_start: str = "2024-01-01",
                       voice_connector_ids: list[str]) -> str:
    """Trino's CREATE TABLE for the same external table, with the same projection as Athena's."""
    lint_schema(schema)
    table_location = f"{trino_location(location)}/{name}/"
    settings = dict(_projection(table_location, projection_start, voice_connector_ids))
    date_projection = (
        "partition_projection_type='DATE', partition_projection_format='yyyy-MM-dd', "
        f"partition_projection_range=ARRAY['{projection_start}', 'NOW'], "
        "partition_projection_interval=1, partition_projection_interval_unit='DAYS'")
    enum = ", ".join(f"'{v}'" for v in voice_connector_ids)
    column_properties = {
        "date": date_projection,
        "voice_connector_id": f"partition_projection_type='ENUM', partition_projection_values=ARRAY[{enum}]",
    }
    columns = [f'  "{f.name}" {trino_type(f.type)} COMMENT \'{comment(description(f))}\''
               for f in schema]
    columns += [f'  "{n}" varchar COMMENT \'{comment(text)}\' WITH ({column_properties[n]})'
                for n, text in PARTITION_COLUMNS]
    return "\n".join([
        f'CREATE TABLE IF NOT EXISTS "{catalog}"."{database}"."{name}" (',
        ",\n".join(columns),
        ")",
        f"COMMENT '{comment(description(schema))}'",
        "WITH (",
        f"  external_location = '{table_location.rstrip('/')}',",
        "  format = 'PARQUET',",
        "  partitioned_by = ARRAY[" + ", ".join(f"'{n}'" for n, _ in PARTITION_COLUMNS) + "],",
        "  partition_projection_enabled = true,",
        f"  partition_projection_location_template = '{settings['storage.location.template']}'",
        ");",
    ])


def statements(location: str, database: str = "voicelake", variant: str = "projection",
               projection_start: str = "2024-01-01",
               voice_connector_ids: list[str] | None = None, *, dialect: str = "athena",
               catalog: str = "awsdatacatalog") -> list[str]:
    """The whole script: the database, then every table (and its MSCK REPAIR when asked)."""
    if dialect == "trino":
        if variant != "projection":
            raise ValueError("the trino dialect has the projection variant only")
        return [f'CREATE SCHEMA IF NOT EXISTS "{catalog}"."{database}";'] + [
            trino_create_table(name, schema, location, database, catalog=catalog,
                               projection_start=projection_start,
                               voice_connector_ids=voice_connector_ids or [])
            for name, schema in TABLES.items()]
    out = [f"CREATE DATABASE IF NOT EXISTS `{database}`;"]
    for name, schema in TABLES.items():
        out.append(create_table(name, schema, location, database,
                                projection=variant in ("projection", "both"),
                                projection_start=projection_start,
                                voice_connector_ids=voice_connector_ids))
        if variant in ("msck", "both"):
            out.append(f"MSCK REPAIR TABLE `{database}`.`{name}`;")
    return out


def add_partitions(location: str, database: str, partitions: dict[str, list[tuple[str, str]]]) -> list[str]:
    """``ALTER TABLE ... ADD IF NOT EXISTS PARTITION`` for each table's (date, voice_connector_id)
    pairs: what a run wrote, for tables without projection (Athena, Spark SQL and Hive read it)."""
    out = []
    for name, pairs in partitions.items():
        if not pairs:
            continue
        clauses = [f"  PARTITION (`date` = '{d}', `voice_connector_id` = '{v}') "
                   f"LOCATION '{layout.partition_dir(location, name, d, v)}/'"
                   for d, v in sorted(set(pairs))]
        out.append(f"ALTER TABLE `{database}`.`{name}` ADD IF NOT EXISTS\n" + "\n".join(clauses) + ";")
    return out


def _checked(check, message: str):
    """An argparse ``type=`` that turns a failed check into a usage error."""
    def parse(text: str):
        try:
            value = check(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e) or message) from None
        if value is None:
            raise argparse.ArgumentTypeError(f"{message}: {text!r}")
        return value
    return parse


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="voicelake ddl",
                                description="Print Athena DDL for every voicelake table.")
    p.add_argument("--location", required=True, type=_checked(location_uri, "bad location"),
                   help="output root the pipeline writes to: s3://bucket/prefix or a local path")
    p.add_argument("--database", default="voicelake",
                   type=_checked(lambda s: s if _DATABASE.match(s) else None,
                                 "database names are lower-case letters, digits and _"))
    p.add_argument("--variant", choices=VARIANTS, default="projection",
                   help="partition projection, MSCK REPAIR, or both (default: projection)")
    p.add_argument("--projection-start", default="2024-01-01",
                   type=_checked(lambda s: date.fromisoformat(s).isoformat() if len(s) == 10
                                 else None, "expected YYYY-MM-DD"),
                   help="first date of the projected date range (default: 2024-01-01)")
    p.add_argument("--voice-connector-ids",
                   type=_checked(lambda s: s.split(",") if all(_ID.match(i) for i in s.split(","))
                                 else None, "expected comma-separated IDs"),
                   help="the values of the voice_connector_id projection (Chime Voice Connector "
                        "and Connect instance IDs); default: the ones the lake at --location holds")
    p.add_argument("--dialect", choices=DIALECTS, default="athena",
                   help="athena: Hive DDL (Athena, Spark SQL, Hive); trino: Trino's CREATE TABLE "
                        "for a Trino with a Hive metastore (default: athena)")
    p.add_argument("--catalog", default="awsdatacatalog",
                   type=_checked(lambda s: s if _DATABASE.match(s) else None,
                                 "catalog names are lower-case letters, digits and _"),
                   help="trino dialect: the Hive catalog to create the tables in (default: "
                        "awsdatacatalog, the name Athena gives its own)")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    ids = args.voice_connector_ids
    if ids is None and (args.variant != "msck" or args.dialect == "trino"):
        try:
            ids = lake_voice_connector_ids(args.location)
        except Exception as e:  # one line naming the lake, whatever the storage layer raised
            print(f"voicelake ddl: cannot list the lake at {args.location} to find its "
                  f"voice_connector_id partitions ({type(e).__name__}: {e}); name them with "
                  f"--voice-connector-ids", file=sys.stderr)
            return 2
        if not ids:
            print(f"voicelake ddl: no voice_connector_id=... partitions under {args.location} yet: "
                  f"run the pipeline first, or name the connectors and instances with "
                  f"--voice-connector-ids, or use --variant msck", file=sys.stderr)
            return 2
    try:
        script = statements(args.location, args.database, args.variant, args.projection_start,
                            ids, dialect=args.dialect, catalog=args.catalog)
    except ValueError as e:
        parser.error(str(e))
    print("\n\n".join(script))
    return 0


if __name__ == "__main__":
    sys.exit(main())
