"""A one-node Trino on loopback with a Hive catalog over local folders: Athena engine v3's engine.

Athena's DML is Trino's, and Athena reads Glue tables the way Trino's Hive connector reads a
metastore: Parquet types, partition projection (the ``projection.*`` table properties) and
``"date"`` quoting behave the same.  The catalog is named ``awsdatacatalog`` like Athena's own, its
metastore is a folder (``hive.metastore=file``), and lake paths are read through Trino's native
local file system as ``local:///abs/path``.  A projected partition without a folder reads as empty,
as in Athena (``hive.ignore-absent-partitions``).  The JVM runs in UTC, Athena's session zone.
"""
from __future__ import annotations

import contextlib
import json
import time
import urllib.request
from pathlib import Path

from runners.local.processes import serving
from runners.processes import free_port

CATALOG = "awsdatacatalog"


def _write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def configure(workdir: Path, home: Path, port: int) -> Path:
    """Trino's etc/ for a small single node; only the Hive plugin is loaded (a faster start)."""
    etc = workdir / "etc"
    plugins = workdir / "plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    link = plugins / "hive"
    if not link.exists():
        link.symlink_to(home / "plugin" / "hive", target_is_directory=True)
    _write(etc / "config.properties", [
        "coordinator=true",
        "node-scheduler.include-coordinator=true",
        f"http-server.http.port={port}",
        f"discovery.uri=http://127.0.0.1:{port}",
        "node.environment=voicelake_test",
        "node.id=voicelake-test",
        "node.internal-address=127.0.0.1",  # announce loopback, not whatever interface comes first
        f"plugin.dir={plugins}",
        "query.max-memory=512MB",
        "query.max-memory-per-node=512MB",
        # one node that pings itself: on a loaded 2-core machine a slow ping would mark it failed
        # and fail queries with NO_NODES_AVAILABLE
        "failure-detector.enabled=false",
    ])
    _write(etc / "log.properties", ["io.trino=WARN", "io.trino.server.Server=INFO"])
    _write(etc / "catalog" / f"{CATALOG}.properties", [
        "connector.name=hive",
        "hive.metastore=file",
        f"hive.metastore.catalog.dir=local://{workdir / 'metastore'}",
        "fs.native-local.enabled=true",
        "local.location=/",
        "hive.ignore-absent-partitions=true",
        "hive.table-statistics-enabled=false",  # projected partitions have none in the metastore
    ])
    (workdir / "metastore").mkdir(exist_ok=True)
    return etc


def command(java: Path, home: Path, etc: Path) -> list[str]:
    return [
        # C1 only: a test server runs small queries once; on 2 cores it starts in half the time
        str(java), "-Xmx1G", "-XX:+UseG1GC", "-XX:TieredStopAtLevel=1", "-XX:+ExitOnOutOfMemoryError",
        "-Duser.timezone=UTC", "-Djdk.attach.allowAttachSelf=true",
        "--enable-native-access=ALL-UNNAMED",
        f"-Dconfig={etc / 'config.properties'}", f"-Dlog.levels-file={etc / 'log.properties'}",
        f"-Dcatalog.config-dir={etc / 'catalog'}",
        "-cp", f"{home / 'lib'}/*", "io.trino.server.TrinoServer",
    ]


def _get(url: str, data: bytes | None = None) -> dict:
    request = urllib.request.Request(url, data=data, headers={"X-Trino-User": "voicelake"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def _started(port: int) -> bool:
    """Trino answers HTTP before it has loaded its plugins (/v1/info says when it has), and schedules
    a table scan only once it has seen its own node announce itself as active, a few seconds later:
    until then a scan fails with NO_NODES_AVAILABLE (a VALUES query runs before that, so it proves
    nothing).  So the node list must show the node active."""
    try:
        if _get(f"http://127.0.0.1:{port}/v1/info").get("starting") is not False:
            return False
        result = _get(f"http://127.0.0.1:{port}/v1/statement",
                      b"SELECT count(*) FROM system.runtime.nodes WHERE state = 'active'")
        rows = result.get("data", [])
        while "nextUri" in result:  # the rows come in the pages before the last
            result = _get(result["nextUri"])
            rows += result.get("data", [])
        return rows == [[1]]
    except OSError:
        return False


@contextlib.contextmanager
def trino_server(workdir: Path, *, home: Path, java: Path, timeout_s: float = 180):
    """Yields the port of a started Trino; its log is ``workdir/server.log``."""
    port = free_port()
    etc = configure(workdir, home, port)
    log = workdir / "server.log"
    with serving(command(java, home, etc), port, log, timeout_s=timeout_s, cwd=workdir) as process:
        deadline = time.time() + timeout_s
        while not _started(port):
            if process.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"Trino did not start on port {port}:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield port
