"""The same job on Beam's other engines, and on workers that have nothing but the wheel.

Every run must write a lake byte-identical to the default engine's, outside ``_runs/`` (the run log,
which records the runner):
- ``voicelake demo --engine E`` for every engine (``runners/launch.py``): Prism, Flink embedded and as a
  standalone cluster (JobManager + 2 TaskManager JVMs, PROCESS workers or a worker pool per
  TaskManager), Spark ``local[2]`` and as a standalone cluster (master + worker, executors in their own
  JVM), each against the demo that ran on the default engine; everything an engine started is gone
  when the demo ends.
- A cluster that loses a JVM while the job fetches media: Flink restarts the job on the surviving
  TaskManager (restart strategy set through Beam's options), Spark reruns the lost tasks on a restarted
  worker.
- **Prism** reached the way Beam 2.77 users reach it by default: ``--runner=DirectRunner
  --prism_location=…``. DirectRunner falls back to its own runners without a word when Prism fails, so
  the test also checks which runner actually ran.
- **An EXTERNAL worker pool** started from a fresh virtual environment that holds only the wheel built
  from this checkout and its declared dependencies, the way Dataflow's and Flink's workers hold only
  what was packaged. It proves the wheel carries every module and data file the job needs.

Dataflow itself cannot run here; its worker image gets AWS keys from Secret Manager through
``runners/dataflow/aws_credentials.py``, tested against a local stand-in of the two Google APIs.
"""
from __future__ import annotations

import base64
import fcntl
import hashlib
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from pathlib import Path

import pytest

from pipeline.run import run
from runners import clusters, engines
from runners.launch import ENGINES
from runners.local.fingerprint import lake_fingerprint
from runners.local.processes import job_service_command, serving
from runners.processes import free_port
from tests.conftest import ROOT
from tests.pipeline_runs import pipeline_args, without_run

pytestmark = pytest.mark.engines


def without_counters(summary: dict) -> dict:
    return {k: v for k, v in without_run(summary).items() if k != "counters"}


def engine_args(world, output: Path) -> list[str]:
    """The e2e tests' arguments without their runner: each test names its engine."""
    return [a for a in pipeline_args(world, output) if not a.startswith("--runner=")]


@pytest.fixture(scope="module")
def default_run(world, tmp_path_factory):
    lake = tmp_path_factory.mktemp("default-lake")
    summary = run(pipeline_args(world, lake))
    return summary, lake_fingerprint(lake)


# --- helpers of runners/engines.py and runners/fetch_engines.sh ---------------------------------

def test_a_job_server_jar_is_refused_in_one_line_unless_it_is_the_sdks_release_or_the_measured_skew():
    assert engines.check_job_server_jar("jars/beam-runners-flink-2.2-job-server-2.77.0.jar", "2.77.0") is None
    assert engines.check_job_server_jar("beam-runners-spark-3-job-server-2.77.0.jar", "2.77.0") is None
    # the Java runners Maven serves, measured against this SDK series: allowed
    assert engines.check_job_server_jar("x/beam-runners-flink-1.19-job-server-2.62.0.jar", "2.77.0") is None
    assert engines.check_job_server_jar("beam-runners-spark-3-job-server-2.62.0.jar", "2.77.1") is None
    old = engines.check_job_server_jar("/x/beam-runners-flink-1.19-job-server-2.73.0.jar", "2.77.0")
    assert old == ("beam-runners-flink-1.19-job-server-2.73.0.jar is Beam 2.73.0, but the Python SDK 2.77.0 "
                   "was only measured against job servers 2.77.0 and 2.62.0: use one of those "
                   "(bash runners/fetch_engines.sh)")
    # the skew is measured for one SDK series only
    other_sdk = engines.check_job_server_jar("beam-runners-flink-1.19-job-server-2.62.0.jar", "2.78.0")
    assert other_sdk.endswith("was only measured against job servers 2.78.0: use one of those "
                              "(bash runners/fetch_engines.sh)")
    snapshot = engines.check_job_server_jar("beam-runners-flink-2.2-job-server-2.78.0-SNAPSHOT.jar", "2.77.0")
    assert "is Beam 2.78.0-SNAPSHOT, but the Python SDK 2.77.0" in snapshot
    unknown = engines.check_job_server_jar("flink-dist-2.2.0.jar", "2.77.0")
    assert unknown.startswith("flink-dist-2.2.0.jar: not a Beam job-server jar name")
    assert all("\n" not in m for m in (old, other_sdk, snapshot, unknown))


def test_voicelake_run_refuses_an_unmeasured_job_server_before_starting_anything(tmp_path):
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", "run", "--date=2024-05-14",
                           f"--output={tmp_path}", "--runner=FlinkRunner",
                           "--flink_job_server_jar=beam-runners-flink-1.19-job-server-2.61.0.jar"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 2
    refusal, where_the_log_is = done.stderr.strip().splitlines()[-2:]  # one line, then the log's path
    assert refusal.startswith(
        "voicelake run: beam-runners-flink-1.19-job-server-2.61.0.jar is Beam 2.61.0, but the Python SDK")
    assert where_the_log_is.startswith("  (log: ")


def test_the_fetch_script_pins_the_installed_beam_release_and_the_pom_the_runners_release():
    pinned = re.search(r'^BEAM_VERSION="([^"]+)"$', engines.FETCH_SCRIPT.read_text(), re.M)
    assert pinned and pinned[1] == engines.sdk_version()
    pom = engines.POM.read_text()
    assert f"<beam.version>{engines.RUNNER_RELEASE}</beam.version>" in pom
    assert "<flink.minor>1.19</flink.minor>" in pom and engines.FLINK.folder == "flink-1.19"
    assert "<spark.version>3.5.1</spark.version>" in pom and engines.SPARK.folder == "spark-3.5"
    assert engines.FLINK.jar_name == f"beam-runners-flink-1.19-job-server-{engines.RUNNER_RELEASE}.jar"


def _path_without(tool: str, folder: Path) -> str:
    """A PATH of one folder linking every program on PATH but ``tool`` (mvn sits beside coreutils)."""
    folder.mkdir()
    for directory in reversed(os.environ["PATH"].split(os.pathsep)):
        for program in Path(directory).glob("*") if Path(directory).is_dir() else ():
            if program.name != tool and os.access(program, os.X_OK) and program.is_file():
                (folder / program.name).unlink(missing_ok=True)
                (folder / program.name).symlink_to(program)
    return str(folder)


@pytest.mark.parametrize("engine, tool, line", [
    ("prism", "go", "missing  prism  Go is not installed; Prism is built from source with Go "
                    "(1.26+, or 1.21+ fetching its toolchain)"),
    ("spark", "mvn", "missing  spark  Maven (mvn) is not installed; it resolves runners/pom.xml -P spark"),
])
@pytest.mark.parametrize("ci, status", [("", 0), ("true", 1)])
def test_without_its_build_tool_the_fetch_script_says_so_and_fails_only_under_ci(tmp_path, engine, tool,
                                                                                  line, ci, status):
    env = {"PATH": _path_without(tool, tmp_path / "bin"), "HOME": str(tmp_path),
           "VOICELAKE_ENGINES": str(tmp_path / "c"),
           "CI": ci}
    done = subprocess.run([shutil.which("bash"), str(engines.FETCH_SCRIPT), engine], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == status, done.stderr
    assert done.stdout.splitlines() == [f"engine cache: {tmp_path / 'c'}", line]


@pytest.mark.parametrize("ci", ["", "true"])
def test_a_missing_engine_skips_with_one_line_but_fails_under_ci(tmp_path, monkeypatch, ci):
    monkeypatch.setenv("VOICELAKE_ENGINES", str(tmp_path))
    monkeypatch.setenv("CI", ci)
    outcome = pytest.fail.Exception if ci else pytest.skip.Exception
    with pytest.raises(outcome) as raised:
        engines.require_or_skip("flink-job-server")
    message = str(raised.value)
    assert message.startswith(f"flink-job-server is missing: no {tmp_path}/flink-1.19/"
                              f"beam-runners-flink-1.19-job-server-{engines.RUNNER_RELEASE}.jar")
    assert "fetch_engines.sh flink" in message and "\n" not in message


# --- voicelake demo --engine E ------------------------------------------------------------------------

ENGINE_TOOLS = {"prism": "prism", "flink": "flink-job-server", "flink-cluster": "flink-job-server",
                "spark": "spark-job-server", "spark-cluster": "spark-job-server"}


def fetched(tool: str) -> Path:
    """An engine from the cache; fetched here once when missing (CI fetches before the tests)."""
    if engines.locate(tool) is None and not engines.in_ci():
        name = "prism" if tool == "prism" else tool.removesuffix("-job-server")
        subprocess.run(["bash", str(engines.FETCH_SCRIPT), name], check=False, timeout=1200)
    engines.require_or_skip("java")
    return engines.require_or_skip(tool)


def processes_with(marker: str) -> list[str]:
    """Command lines of live processes whose environment carries ``marker`` (inherited by every
    process a demo starts: job servers, cluster JVMs, executors, SDK workers)."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker.encode() in environ.read_bytes():
                found.append(environ.with_name("cmdline").read_bytes().replace(b"\0", b" ").decode()[:200])
        except OSError:
            continue
    return found


def demo(workdir: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    marker = f"VOICELAKE_TEST_DEMO={uuid.uuid4()}"
    env = {**os.environ, marker.split("=")[0]: marker.split("=")[1]}
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", "demo", "--workdir", str(workdir),
                           "--s3-port", str(free_port()), "--kvs-port", str(free_port()), *args],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=900)
    log = workdir / "pipeline.log"
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:],
                                  log.read_text()[-5000:] if log.exists() else "")
    deadline = time.time() + 15  # a stopped server may take a moment to exit
    while processes_with(marker) and time.time() < deadline:
        time.sleep(0.5)
    assert processes_with(marker) == [], "the demo left processes running"
    truth = json.loads((workdir / "truth.json").read_text())
    return done, json.loads((workdir / "lake/_runs" / truth["date"] / "summary.json").read_text())


@pytest.fixture(scope="module")
def default_demo(tmp_path_factory):
    work = tmp_path_factory.mktemp("demo") / "fnapi"
    _, summary = demo(work)
    assert (summary["run"]["runner"], summary["run"]["engine"]) == ("FnApiRunner", "fnapi")
    return summary, lake_fingerprint(work / "lake")


RUNNERS = {"prism": "PrismRunner", "flink": "FlinkRunner", "flink-cluster": "PortableRunner",
           "spark": "SparkRunner", "spark-cluster": "PortableRunner"}


def sdk_workers_started(log: Path) -> int:
    """Python SDK workers a Flink TaskManager started: each says so first through its logging service."""
    return log.read_text(errors="replace").count("Logging handler created.")


@pytest.mark.parametrize("engine, workers", [(e, "process") for e in ENGINES if e != "fnapi"]
                         + [("flink-cluster", "external")])
def test_the_demo_on_every_engine_writes_the_default_engines_lake_and_stops_what_it_started(
        default_demo, tmp_path, engine, workers):
    fetched(ENGINE_TOOLS[engine])
    summary, digests = default_demo
    done, on_engine = demo(tmp_path / engine, "--engine", engine, "--sdk-workers", workers)
    assert lake_fingerprint(tmp_path / engine / "lake") == digests
    assert (on_engine["run"]["runner"], on_engine["run"]["engine"]) == (RUNNERS[engine], engine)
    # calls, failures by reason, fragments, bytes and audio; not every raw counter: Beam 2.62's Java
    # runners under-report the ListFragments step's counters (fragments_listed 266 or 165 of 431)
    assert without_counters(on_engine) == without_counters(summary)
    if engine.endswith("-cluster"):
        started = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("  started ")]
        taskmanagers = (["sdk-pool-1", "taskmanager-1", "sdk-pool-2", "taskmanager-2"] if workers == "external"
                        else ["taskmanager-1", "taskmanager-2"])
        expected = (["jobmanager", *taskmanagers, "job-server"] if engine == "flink-cluster"
                    else ["master", "worker", "job-server"])
        assert started == expected
        assert f"  stopped {', '.join(reversed(expected))}" in done.stdout
    if engine == "flink-cluster":
        # one SDK worker per TaskManager for the whole job, not a new one for every stage
        logs = sorted((tmp_path / engine / "engine/cluster/logs").glob("taskmanager-*.log"))
        assert [sdk_workers_started(log) for log in logs] == [1, 1]


def test_a_process_worker_takes_its_endpoints_from_the_provision_service():
    """Java runners start PROCESS workers with only --id and --provision_endpoint."""
    from apache_beam.portability.api import beam_provision_api_pb2, endpoints_pb2
    from google.protobuf import struct_pb2

    from runners import worker_boot

    args = worker_boot.parse_args(["--id=1-1", "--provision_endpoint=localhost:1"])
    options = struct_pb2.Struct()
    options.update({"beam:option:default_sdk_harness_log_level:v1": "WARN"})
    info = beam_provision_api_pb2.ProvisionInfo(
        pipeline_options=options, runner_capabilities=["beam:protocol:control_response_elements_embedding:v1"],
        control_endpoint=endpoints_pb2.ApiServiceDescriptor(url="localhost:2"),
        logging_endpoint=endpoints_pb2.ApiServiceDescriptor(url="localhost:3"))
    env = worker_boot.worker_environment(args, info)
    assert {k: v for k, v in env.items() if k != "PIPELINE_OPTIONS"} == {
        "WORKER_ID": "1-1", "CONTROL_API_SERVICE_DESCRIPTOR": 'url: "localhost:2"',
        "LOGGING_API_SERVICE_DESCRIPTOR": 'url: "localhost:3"',
        "RUNNER_CAPABILITIES": "beam:protocol:control_response_elements_embedding:v1"}
    assert json.loads(env["PIPELINE_OPTIONS"]) == {"beam:option:default_sdk_harness_log_level:v1": "WARN"}


# --- a cluster loses a JVM while media is fetched -------------------------------------------------------

def on_first_media_request(world, action):
    """Run ``action`` once, inside the KVS emulator, when the first GetMediaForFragmentList arrives:
    ranges are being fetched, and most of them still wait."""
    service, fired = world.kvs.service, threading.Event()
    operation = service.operation

    def hooked(path):
        if path == "/getMediaForFragmentList" and not fired.is_set():
            fired.set()
            action()
        return operation(path)

    service.operation = hooked
    return fired


@pytest.fixture
def restore_kvs(world):
    yield
    world.kvs.service.__dict__.pop("operation", None)


def cluster_command(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runners.clusters", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


def test_flink_restarts_the_job_on_the_surviving_taskmanager_when_one_is_killed(
        world, default_run, tmp_path, restore_kvs):
    """Also the cluster commands users run: start (printing ports and the options), status, stop."""
    fetched("flink-job-server")
    _, digests = default_run
    state = tmp_path / "flink"
    # two slots each: after the loss, the survivor alone has the job's parallelism of 2
    started = cluster_command("flink", "start", "--state", str(state), "--slots", "2", "--free-ports")
    assert started.returncode == 0, started.stderr[-3000:]
    cluster = clusters.Cluster.load(state)
    try:
        roles = [line.split()[0] for line in started.stdout.splitlines()[1:5]]
        assert roles == ["jobmanager", "taskmanager-1", "taskmanager-2", "job-server"]
        assert f"rest 127.0.0.1:{cluster.ports['rest']}" in started.stdout
        assert (f"submit with: voicelake run … --runner=PortableRunner "
                f"--job_endpoint=127.0.0.1:{cluster.ports['job']} --parallelism=4") in started.stdout
        killed = []
        fired = on_first_media_request(world, lambda: killed.append(cluster.kill("taskmanager-1")))
        on_flink = run(engine_args(world, tmp_path / "lake") + cluster.beam_options
                       + ["--parallelism=2", "--default_sdk_harness_log_level=WARN", *clusters.FLINK_RESTARTS])
        jobs = clusters.flink_rest(cluster, "/jobs/overview")["jobs"]
        exceptions = clusters.flink_rest(cluster, f"/jobs/{jobs[0]['jid']}/exceptions")
        status = cluster_command("flink", "status", "--state", str(state))
        stopped = cluster_command("flink", "stop", "--state", str(state))
    finally:
        clusters.Cluster.load(state).stop()
    assert fired.is_set() and len(killed) == 1
    assert [j["state"] for j in jobs] == ["FINISHED"]
    # the job did lose tasks to the kill, and recovered by restarting
    history = exceptions["exceptionHistory"]["entries"]
    assert history and "taskmanager-1" in json.dumps(history)
    assert lake_fingerprint(tmp_path / "lake") == digests
    # The lake is exact; Beam's metrics of a recovered run are not (the lost TaskManager's counts are
    # gone, the restarted tasks count again), so the summary only says who ran it.
    assert on_flink["run"]["runner"] == "PortableRunner"
    assert status.returncode == 1
    assert [line.split()[:4] for line in status.stdout.splitlines()[1:5]] == [
        ["jobmanager", "pid", str(cluster.role("jobmanager").pid), "up"],
        ["taskmanager-1", "pid", str(killed[0]), "DOWN"],
        ["taskmanager-2", "pid", str(cluster.role("taskmanager-2").pid), "up"],
        ["job-server", "pid", str(cluster.role("job-server").pid), "up"]]
    assert stopped.stdout == "stopped job-server, taskmanager-2, taskmanager-1, jobmanager\n"
    assert not any(p.alive() for p in cluster.processes)


def test_spark_reruns_the_lost_tasks_on_a_restarted_worker_when_the_worker_is_killed(
        world, default_run, tmp_path, restore_kvs):
    fetched("spark-job-server")
    _, digests = default_run
    cluster = clusters.start_spark(tmp_path / "spark", free_ports=True)
    try:
        killed = []

        def lose_the_worker():
            killed.append(cluster.kill("worker"))
            cluster.processes.remove(cluster.role("worker"))
            # what a supervisor (systemd, Kubernetes) does for a lost worker; the master hands the
            # application a new executor on it
            threading.Thread(target=clusters.start_spark_worker, args=(cluster,), daemon=True).start()

        fired = on_first_media_request(world, lose_the_worker)
        on_spark = run(engine_args(world, tmp_path / "lake") + cluster.beam_options
                       + ["--default_sdk_harness_log_level=WARN"])
    finally:
        cluster.stop()
        clusters.stop_group(killed[0]) if killed else None
    assert fired.is_set() and len(killed) == 1
    assert lake_fingerprint(tmp_path / "lake") == digests
    assert on_spark["run"]["runner"] == "PortableRunner"  # its counters count the rerun tasks twice


# --- Prism -----------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def prism() -> Path:
    return fetched("prism")


def record_runners(monkeypatch) -> list[str]:
    """Names of the runners DirectRunner hands the pipeline to, in order."""
    from apache_beam.runners.direct.direct_runner import BundleBasedDirectRunner
    from apache_beam.runners.portability.fn_api_runner.fn_runner import FnApiRunner
    from apache_beam.runners.portability.prism_runner import PrismRunner

    used = []
    for cls in (PrismRunner, FnApiRunner, BundleBasedDirectRunner):
        def spy(self, pipeline, options, _run=cls.run_pipeline, _name=cls.__name__):
            used.append(_name)
            return _run(self, pipeline, options)
        monkeypatch.setattr(cls, "run_pipeline", spy)
    return used


def test_direct_runner_with_a_prism_location_runs_on_prism_and_writes_the_same_lake(
        world, default_run, prism, tmp_path, monkeypatch):
    summary, digests = default_run
    used = record_runners(monkeypatch)
    on_prism = run(engine_args(world, tmp_path) + ["--runner=DirectRunner", f"--prism_location={prism}"])
    assert used == ["PrismRunner"], "DirectRunner fell back from Prism"
    assert lake_fingerprint(tmp_path) == digests
    assert without_run(on_prism) == without_run(summary)


# --- the wheel, alone ------------------------------------------------------------------------------

def checkout_files() -> list[str]:
    """The checkout as git sees it: tracked and new files, no ignored build leftovers."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, check=True).stdout.decode()
    return sorted(f for f in listed.split("\0") if f and (ROOT / f).is_file())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The voicelake wheel of the checkout as it is now.

    Built from a copy: setuptools reuses a build/ folder in the source tree, so a module deleted
    from the checkout would still ship from an old build/lib.
    """
    source = tmp_path_factory.mktemp("checkout")
    for name in checkout_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out),
                    str(source)], check=True, timeout=300)
    return next(out.glob("voicelake-*.whl"))


def wheel_metadata(wheel: Path, name: str) -> str:
    with zipfile.ZipFile(wheel) as z:
        return z.read(next(n for n in z.namelist() if n.endswith(f".dist-info/{name}"))).decode()


def isolated_env(venv: Path, **extra: str) -> dict[str, str]:
    """Only the venv's interpreter on PATH and no PYTHONPATH: nothing of the checkout can leak in."""
    return {"PATH": f"{venv / 'bin'}{os.pathsep}{os.defpath}", "HOME": os.environ["HOME"], **extra}


def pip(venv: Path, *args: str) -> None:
    # pip keeps the caller's environment (index, proxy and certificate settings), minus Python paths
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON") and k != "VIRTUAL_ENV"}
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "--quiet", *args], check=True,
                   cwd=venv, env={**env, "PATH": isolated_env(venv)["PATH"]}, timeout=900)


@pytest.fixture(scope="module")
def wheel_venv(wheel) -> Path:
    """A virtual environment holding the wheel and its declared dependencies, nothing else.

    Resolving and installing the dependencies takes ~45 s, so the environment is kept under the
    engine cache, keyed by the Python version and the wheel's Requires-Dist: a change of dependencies
    makes a new one. The wheel itself is reinstalled on every run, so the code is this checkout's.
    """
    requires = [line for line in wheel_metadata(wheel, "METADATA").splitlines()
                if line.startswith("Requires-Dist:")]
    key = hashlib.sha256("\n".join([sys.version, *requires]).encode()).hexdigest()[:16]
    venvs = engines.cache_dir() / "wheel-venvs"
    venvs.mkdir(parents=True, exist_ok=True)
    venv, done = venvs / key, venvs / f"{key}.complete"
    with open(venvs / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two sessions never build the same venv at once
        if done.exists():
            pip(venv, "install", "--no-deps", "--force-reinstall", str(wheel))
        else:
            shutil.rmtree(venv, ignore_errors=True)  # an interrupted build
            # no --system-site-packages: the base interpreter's packages stay invisible too
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
            pip(venv, "install", f"{wheel}[local]")  # the demo world needs moto
            done.touch()
    pip(venv, "check")
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import pipeline; print(pipeline.__file__)"],
                           cwd=venv, env=isolated_env(venv), capture_output=True, text=True, check=True)
    assert where.stdout.startswith(str(venv)), where.stdout
    return venv


def _in_package(name: str) -> bool:
    parts = name.split("/")[:-1]
    return all((ROOT.joinpath(*parts[:i]) / "__init__.py").is_file() for i in range(1, len(parts) + 1))


def test_the_wheel_ships_every_module_of_its_packages(wheel):
    top_level = wheel_metadata(wheel, "top_level.txt").split()
    with zipfile.ZipFile(wheel) as z:
        shipped = set(z.namelist())
    modules = [f for f in checkout_files()
               if f.endswith(".py") and f.split("/")[0] in top_level and _in_package(f)]
    assert len(modules) > 20
    assert [m for m in modules if m not in shipped] == []


def seed_demo_world(python: str, workdir: Path, env: dict[str, str] | None) -> bytes:
    subprocess.run([python, "-m", "pipeline.cli", "demo", "--workdir", str(workdir), "--seed-only"],
                   cwd=workdir.parent, env=env, check=True, capture_output=True, timeout=300)
    return (workdir / "truth.json").read_bytes()


def test_the_wheel_alone_seeds_the_same_demo_world(wheel_venv, tmp_path):
    """The local world and its bundled speech clips (package data) ship: the truth, PCM hashes included,
    is the same as the checkout's."""
    from_wheel = seed_demo_world(str(wheel_venv / "bin" / "python"), tmp_path / "wheel",
                                 isolated_env(wheel_venv))
    assert from_wheel == seed_demo_world(sys.executable, tmp_path / "checkout", None)


def worker_boot_launcher(venv: Path, folder: Path) -> Path:
    """The pool's --container_executable: the venv's Python booting a worker as Beam's container does."""
    launcher = folder / "boot.sh"
    launcher.write_text(f'#!/bin/sh\nexec "{venv / "bin" / "python"}" -m runners.worker_boot "$@"\n')
    launcher.chmod(0o755)
    return launcher


def test_workers_with_only_the_wheel_write_the_same_lake(world, default_run, wheel_venv, tmp_path):
    summary, digests = default_run
    pool_dir = tmp_path / "pool"  # the workers' working directory, outside the checkout
    pool_dir.mkdir()
    job_port, pool_port = free_port(), free_port()
    job_service = job_service_command(job_port)
    # S3 reaches the workers as it reaches any AWS process: the standard variables (here: moto's).
    launcher = worker_boot_launcher(wheel_venv, pool_dir)
    pool = [str(wheel_venv / "bin" / "python"), "-m", "apache_beam.runners.worker.worker_pool_main",
            f"--service_port={pool_port}", f"--container_executable={launcher}"]
    with serving(job_service, job_port, tmp_path / "job_service.log"), \
            serving(pool, pool_port, tmp_path / "pool.log", cwd=pool_dir,
                    env=isolated_env(wheel_venv, **world.s3.environment())):
        try:
            external = run(engine_args(world, tmp_path / "lake") + [
                "--runner=PortableRunner", f"--job_endpoint=localhost:{job_port}",
                "--environment_type=EXTERNAL", f"--environment_config=localhost:{pool_port}"])
        finally:
            print((tmp_path / "pool.log").read_text()[-5000:])  # shown when the test fails
    pool_log = (tmp_path / "pool.log").read_text()
    # the pool's workers were booted by the launcher, and sdk_worker_main received the options
    assert f"Starting worker with command ['{launcher}'" in pool_log and "Pipeline_options:" in pool_log
    assert lake_fingerprint(tmp_path / "lake") == digests
    assert without_run(external) == without_run(summary)


# --- Dataflow: AWS keys for the workers --------------------------------------------------------------

CREDENTIAL_SCRIPT = ROOT / "runners" / "dataflow" / "aws_credentials.py"
SECRET = "projects/p/secrets/voicelake-aws/versions/latest"


class _FakeGoogle(http.server.BaseHTTPRequestHandler):
    """The VM's metadata server and Secret Manager, as far as aws_credentials.py uses them."""
    secret = b""

    def do_GET(self):
        if self.path.endswith("/service-accounts/default/token"):
            ok, body = self.headers.get("Metadata-Flavor") == "Google", {"access_token": "tok"}
        else:
            ok = (self.path == f"/v1/{SECRET}:access" and self.headers.get("Authorization") == "Bearer tok")
            body = {"payload": {"data": base64.b64encode(self.secret).decode()}}
        data = json.dumps(body).encode() if ok else b"{}"
        self.send_response(200 if ok else 403)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_google(monkeypatch, tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeGoogle)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host = f"127.0.0.1:{server.server_address[1]}"
    config = tmp_path / "aws_config"  # what the Dockerfile writes, with this machine's Python
    config.write_text(f"[default]\nregion = eu-west-1\n"
                      f"credential_process = {sys.executable} {CREDENTIAL_SCRIPT} {SECRET}\n")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)  # the environment would win over the config file
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("GCE_METADATA_HOST", host)
    monkeypatch.setenv("VOICELAKE_SECRET_MANAGER_URL", f"http://{host}")
    yield _FakeGoogle
    server.shutdown()


def test_boto3_on_a_dataflow_worker_gets_the_aws_keys_from_secret_manager(fake_google):
    import boto3

    fake_google.secret = json.dumps({"AccessKeyId": "AKIDEXAMPLE", "SecretAccessKey": "s3cr3t"}).encode()
    session = boto3.session.Session()
    keys = session.get_credentials().get_frozen_credentials()
    assert (keys.access_key, keys.secret_key, keys.token) == ("AKIDEXAMPLE", "s3cr3t", None)
    assert session.region_name == "eu-west-1"


def test_a_secret_without_keys_is_one_line_that_does_not_echo_the_secret(fake_google):
    import boto3
    import botocore.exceptions

    fake_google.secret = json.dumps({"AccessKeyId": "AKIDEXAMPLE", "secret": "s3cr3t"}).encode()
    with pytest.raises(botocore.exceptions.CredentialRetrievalError) as raised:
        boto3.session.Session().get_credentials()
    assert f"cannot read AWS keys from {SECRET}: ValueError: the secret has no SecretAccessKey" in str(raised.value)
    assert "s3cr3t" not in str(raised.value) and "AKIDEXAMPLE" not in str(raised.value)
