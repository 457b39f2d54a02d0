"""``voicelake ddl``: Athena CREATE EXTERNAL TABLE statements for every lake table, from schemas.tables.

Variants (shared/domain/beam.md §4):
  projection  partition projection: no partition maintenance; ``date`` is projected as a date
              range, ``voice_connector_id`` is ``injected`` (every query must pin it with = or IN)
              or, with --voice-connector-ids, an ``enum`` of the given IDs (free queries).
  msck        a plain partitioned table plus ``MSCK REPAIR TABLE``, re-run after each pipeline run.
  both        projection properties for Athena, and MSCK REPAIR too, so engines that ignore
              projection (Spark, Hive, Glue jobs) see the partitions in the catalog.
"""
from __future__ import annotations

import argparse
import re
import sys
from datetime import date
from pathlib import Path

import pyarrow as pa

from schemas.tables import PARTITION_COLUMNS, TABLES, athena_type, description, lint_schema

VARIANTS = ("projection", "msck", "both")
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


def _columns(fields: list[tuple[str, str, str]]) -> str:
    return ",\n".join(f"  `{name}` {type_} COMMENT '{text}'" for name, type_, text in fields)


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
        connectors = ([("projection.voice_connector_id.type", "enum"),
                       ("projection.voice_connector_id.values", ",".join(voice_connector_ids))]
                      if voice_connector_ids else [("projection.voice_connector_id.type", "injected")])
        properties = [
            ("projection.enabled", "true"),
            ("projection.date.type", "date"),
            ("projection.date.format", "yyyy-MM-dd"),
            ("projection.date.range", f"{projection_start},NOW"),
            ("projection.date.interval", "1"),
            ("projection.date.interval.unit", "DAYS"),
            *connectors,
            ("storage.location.template",
             table_location + "date=${date}/voice_connector_id=${voice_connector_id}/"),
        ]
        lines += ["TBLPROPERTIES (", ",\n".join(f"  '{k}'='{v}'" for k, v in properties), ")"]
    return "\n".join(lines) + ";"


def statements(location: str, database: str = "voicelake", variant: str = "projection",
               projection_start: str = "2024-01-01",
               voice_connector_ids: list[str] | None = None) -> list[str]:
    """The whole script: the database, then every table (and its MSCK REPAIR when asked)."""
    out = [f"CREATE DATABASE IF NOT EXISTS `{database}`;"]
    for name, schema in TABLES.items():
        out.append(create_table(name, schema, location, database,
                                projection=variant in ("projection", "both"),
                                projection_start=projection_start,
                                voice_connector_ids=voice_connector_ids))
        if variant in ("msck", "both"):
            out.append(f"MSCK REPAIR TABLE `{database}`.`{name}`;")
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
                   help="project voice_connector_id as this enum instead of 'injected'")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    print("\n\n".join(statements(args.location, args.database, args.variant,
                                 args.projection_start, args.voice_connector_ids)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
