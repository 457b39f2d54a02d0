"""The DDL on Athena's own engine: Trino 476 (Athena engine v3) over the demo lake, checked against DuckDB.

A one-node Trino with a Hive catalog on a file metastore registers every table with the DDL that
``voicelake ddl --dialect trino`` prints, with the enum projection the lake's folders give.  What
Trino stores in its metastore is exactly what the Athena DDL says (column types, ``projection.*``
properties), so these queries are the queries Athena runs.  Each table is read in full, every
column, and compared value by value with DuckDB reading the same Parquet files; the example
queries of docs/athena.md, the first of them a cross-connector count without any partition filter,
give the same numbers on both engines.
"""
from __future__ import annotations

import datetime as dt
import json
import re
import time

import duckdb
import pytest
import trino.dbapi as trino_dbapi
from trino.exceptions import TrinoQueryError

from runners import engines
from runners.local.trino import CATALOG, trino_server
from schemas import athena
from schemas.tables import PARTITION_COLUMNS, TABLES
from tests.conftest import ROOT
from tests.demo_lake import demo_lake

pytestmark = [pytest.mark.engines, pytest.mark.trino]

DATABASE = "voicelake"
HIVE = "hive_partitioning=true, hive_types={'date': VARCHAR, 'voice_connector_id': VARCHAR}"


@pytest.fixture(scope="module")
def lake(world, tmp_path_factory):
    return demo_lake(world, tmp_path_factory)[0]


@pytest.fixture(scope="module")
def trino(lake, tmp_path_factory):
    """A cursor on a started Trino whose catalog holds every table, registered from our DDL."""
    home = engines.require_or_skip("trino")
    java = engines.require_or_skip("java-for-trino")
    workdir = tmp_path_factory.mktemp("trino")
    with trino_server(workdir, home=home, java=java) as port:
        cursor = trino_dbapi.connect(host="127.0.0.1", port=port, user="voicelake",
                                     catalog=CATALOG, schema=DATABASE).cursor()
        for statement in trino_ddl(lake):
            query(cursor, statement)
        yield cursor, workdir / "metastore"


def trino_ddl(lake) -> list[str]:
    """What `voicelake ddl --dialect trino` prints for the lake, split on `;` as tools do."""
    script = "\n\n".join(athena.statements(athena.location_uri(str(lake)), DATABASE, dialect="trino",
                                           voice_connector_ids=athena.lake_voice_connector_ids(str(lake))))
    statements = [s.strip() for s in script.split(";") if s.strip()]
    assert len(statements) == 1 + len(TABLES)
    return statements


def query(cursor, sql: str, wait_s: float = 60) -> list[tuple]:
    """The rows of ``sql``.  A single-node test server can drop out of its own node list for a
    moment on a loaded machine (its announcement is late): a query then fails with
    NO_NODES_AVAILABLE before it reads anything, and is asked again once the node is back."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            cursor.execute(sql)
            return [tuple(row) for row in cursor.fetchall()]
        except TrinoQueryError as exc:
            if exc.error_name != "NO_NODES_AVAILABLE" or time.monotonic() > deadline:
                raise
            time.sleep(1)


def duckdb_lake(lake) -> duckdb.DuckDBPyConnection:
    """DuckDB with the lake's tables as views under the same names Athena queries use."""
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    con.execute(f"CREATE SCHEMA {DATABASE}")
    for name in TABLES:
        con.execute(f"CREATE VIEW {DATABASE}.{name} AS "
                    f"SELECT * FROM read_parquet('{lake / name}/*/*/*.parquet', {HIVE})")
    return con


def as_compared(value):
    """Trino gives timestamp(3) as naive UTC datetimes, DuckDB as aware ones: compare instants."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value


def rows(result: list[tuple]) -> list[tuple]:
    return sorted((tuple(as_compared(v) for v in row) for row in result), key=repr)


def test_the_lake_has_the_connectors_and_instances_the_enum_projection_lists(world, lake):
    ids = athena.lake_voice_connector_ids(str(lake))
    seeded = {c["partition_id"] for c in world.truth.calls}
    assert ids == sorted(seeded | {"unknown"})  # unknown: the failures without a connector


def test_trino_stores_what_the_athena_ddl_declares(trino, lake):
    """Same column types, same projection properties: the two dialects register one table."""
    _, metastore = trino
    ids = athena.lake_voice_connector_ids(str(lake))
    for name, schema in TABLES.items():
        ddl = athena.create_table(name, schema, athena.location_uri(str(lake)), DATABASE,
                                  projection=True, voice_connector_ids=ids)
        stored = json.loads((metastore / DATABASE / name / ".trinoSchema").read_text())
        columns = re.findall(r"^  `(\w+)` (\S+) COMMENT", ddl, re.M)
        assert [(c["name"], c["type"]) for c in stored["dataColumns"]] == columns[:len(schema)]
        assert [(c["name"], c["type"]) for c in stored["partitionColumns"]] == \
            [(n, "string") for n, _ in PARTITION_COLUMNS] == columns[len(schema):]
        declared = dict(re.findall(r"^  '([\w.]+)'='([^']*)'", ddl, re.M))
        declared["storage.location.template"] = athena.trino_location(declared["storage.location.template"])
        kept = {k: v for k, v in stored["parameters"].items() if k in declared}
        assert {k: v.lower() for k, v in kept.items()} == {k: v.lower() for k, v in declared.items()}
        assert stored["externalLocation"] == athena.trino_location(athena.location_uri(str(lake / name)))


@pytest.mark.parametrize("name", list(TABLES))
def test_every_column_of_every_table_reads_the_same_on_trino_and_duckdb(trino, lake, name):
    cursor, _ = trino
    columns = ", ".join(f'"{c}"' for c in [*TABLES[name].names, *(n for n, _ in PARTITION_COLUMNS)])
    on_trino = query(cursor, f"SELECT {columns} FROM {DATABASE}.{name}")
    on_duckdb = duckdb_lake(lake).execute(f"SELECT {columns} FROM {DATABASE}.{name}").fetchall()
    assert len(on_trino) > 0
    assert rows(on_trino) == rows(on_duckdb)


def athena_page_queries() -> list[str]:
    """The SQL blocks of the Athena page (docs/athena.md), split on `;` like the DDL."""
    page = (ROOT / "docs/athena.md").read_text()
    blocks = re.findall(r"```sql\n(.*?)```", page, re.S)
    queries = [q.strip() for block in blocks for q in block.split(";") if q.strip()]
    return [q for q in queries if f"{DATABASE}." in q]


def test_the_athena_page_has_example_queries_and_the_first_needs_no_partition_filter():
    queries = athena_page_queries()
    assert len(queries) >= 4
    assert "voice_connector_id" in queries[0] and "WHERE" not in queries[0]


@pytest.mark.parametrize("number", range(len(athena_page_queries())))
def test_each_athena_page_query_gives_the_same_numbers_on_trino_and_duckdb(trino, lake, number):
    cursor, _ = trino
    sql = athena_page_queries()[number]
    on_trino = query(cursor, sql)
    on_duckdb = duckdb_lake(lake).execute(sql).fetchall()
    assert on_trino, sql
    # every example orders its rows; a sum of doubles may differ in the last bit between engines
    assert [tuple(as_compared(v) for v in row) for row in on_trino] == \
        [tuple(pytest.approx(v, rel=1e-9) if isinstance(v, float) else as_compared(v) for v in row)
         for row in on_duckdb], sql


def test_a_cross_connector_count_without_a_filter_counts_every_call(world, trino):
    cursor, _ = trino
    counted = query(cursor, f"SELECT voice_connector_id, count(*) FROM {DATABASE}.calls "
                            "GROUP BY voice_connector_id")
    expected: dict[str, int] = {}
    for call in world.truth.calls:
        expected[call["partition_id"]] = expected.get(call["partition_id"], 0) + 1
    assert dict(counted) == expected


def test_the_runs_partitions_sql_adds_exactly_the_partitions_the_lake_holds(world, lake):
    """For catalogs without projection: each run leaves ALTER TABLE ... ADD PARTITION for what it wrote."""
    script = (lake / "_runs" / world.config.date / "partitions.sql").read_text()
    statements = [s.strip() for s in script.split(";") if s.strip()]
    con = duckdb_lake(lake)
    for name in TABLES:
        held = con.execute(f'SELECT DISTINCT "date", voice_connector_id FROM {DATABASE}.{name} '
                           'ORDER BY 1, 2').fetchall()
        statement = next(s for s in statements if s.startswith(f"ALTER TABLE `{DATABASE}`.`{name}` "))
        added = re.findall(r"PARTITION \(`date` = '([^']+)', `voice_connector_id` = '([^']+)'\) "
                           r"LOCATION '([^']+)'", statement)
        assert [(d, v) for d, v, _ in added] == held
        assert [loc for _, _, loc in added] == \
            [f"file://{lake}/{name}/date={d}/voice_connector_id={v}/" for d, v in held]
