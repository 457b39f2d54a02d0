"""Each engine the job runs on, as the Beam options that reach it, with whatever it needs running.

    with engine_options("flink-cluster", folder) as options:   # starts, and afterwards stops, a cluster
        pipeline.run.run([...job options..., *options])

| engine          | runner                           | what runs the Python SDK workers                        |
|-----------------|----------------------------------|---------------------------------------------------------|
| `fnapi`         | FnApiRunner, 2 worker processes  | the FnApiRunner's own worker processes                  |
| `prism`         | PrismRunner (Beam's Go runner)   | Prism's workers                                         |
| `flink`         | FlinkRunner, `[local]`           | PROCESS workers started by the job server's embedded Flink |
| `flink-cluster` | PortableRunner → job server → JobManager + 2 TaskManagers | PROCESS, or an EXTERNAL pool per TM |
| `spark`         | SparkRunner, `local[2]`          | PROCESS workers started by the job server's embedded Spark |
| `spark-cluster` | PortableRunner → job server → master + worker | PROCESS workers in the executor JVM |

`flink` and `spark` are spelled as Beam users spell them, with the shaded job-server jar that
``runners/fetch_engines.sh`` makes (Beam's SDK starts and stops the jar itself); the clusters come from
``runners.clusters``. Everything here is about where the job runs: the pipeline knows nothing of it.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from runners import clusters, engines

ENGINES = ("fnapi", "prism", "flink", "flink-cluster", "spark", "spark-cluster")
JVM_ENGINES = ("flink", "flink-cluster", "spark", "spark-cluster")
FNAPI = ["--runner=FnApiRunner", "--direct_running_mode=multi_processing", "--direct_num_workers=2"]


def require(path: Path | None, tool: str) -> Path:
    if path is None:
        raise SystemExit(engines.missing_reason(tool))
    return path


@contextlib.contextmanager
def engine_options(engine: str, folder: Path, *, sdk_workers: str = "process", announce=print,
                   cluster: dict | None = None) -> Iterator[list[str]]:
    """Beam options that run a job on ``engine``; started processes are stopped on leaving.

    ``folder`` holds what the engine needs on disk (worker boot script, cluster state and logs).
    ``announce`` is told, in one line each, what was started and where it listens. ``cluster`` holds
    settings for ``runners.clusters.start`` (e.g. ``{"taskmanagers": 1}``); a started cluster's state,
    processes included, is in ``folder/cluster/cluster.json``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    if engine == "fnapi":
        yield FNAPI
    elif engine == "prism":
        yield ["--runner=PrismRunner", f"--prism_location={require(engines.prism_path(), 'prism')}"]
    elif engine == "flink":
        jar = require(engines.job_server_jar("flink"), "flink-job-server")
        yield ["--runner=FlinkRunner", "--flink_master=[local]", f"--flink_job_server_jar={jar}",
               "--parallelism=2", *clusters.process_options(folder), *clusters.SDK_WORKER_REUSE]
    elif engine == "spark":
        jar = require(engines.job_server_jar("spark"), "spark-job-server")
        yield ["--runner=SparkRunner", "--spark_master_url=local[2]", f"--spark_job_server_jar={jar}",
               *clusters.process_options(folder), *clusters.SDK_WORKER_REUSE]
    elif engine in ("flink-cluster", "spark-cluster"):
        name = engine.removesuffix("-cluster")
        require(engines.job_server_jar(name), f"{name}-job-server")
        settings = {"sdk_workers": sdk_workers, **(cluster or {})}
        running = clusters.start(name, folder / "cluster", free_ports=True, **settings)
        try:
            for line in running.describe():
                announce(f"  started {line}")
            yield running.beam_options
        finally:
            announce(f"  stopped {', '.join(running.stop())}")
    else:
        raise ValueError(f"unknown engine {engine!r} (one of {', '.join(ENGINES)})")
