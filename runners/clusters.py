"""Standalone Flink 1.19 and Spark 3.5 clusters on this machine, each JVM its own process, with Beam's
job server pointed at them and Python SDK workers beside them.

    python -m runners.clusters flink start [--state DIR] [--taskmanagers 2] [--slots 1] [--sdk-workers process]
    python -m runners.clusters flink status [--state DIR]
    python -m runners.clusters flink stop [--state DIR]
    python -m runners.clusters spark start|status|stop [--state DIR] [--worker-cores 2]

``start`` prints every process with the ports it listens on, and the Beam options that submit to the
cluster; ``voicelake run … <those options>`` then runs the job there. Everything comes from the engines
cache (``bash runners/fetch_engines.sh flink spark``): the JVMs run the entry points Flink's and Spark's
own scripts would start (JobManager/TaskManager, Master/Worker), from the runner's Maven classpath, and
the job server is the shaded jar. The processes outlive this command (each in its own session, so its
SDK workers and executors stop with it) and are found again through ``DIR/cluster.json``.

SDK workers:
- ``process`` (Beam's ``PROCESS`` environment): each TaskManager or executor starts its own Python
  workers with ``runners.worker_boot`` and this interpreter. Nothing else to run.
- ``external`` (Flink): one worker pool per TaskManager, each reached by its TaskManager as
  ``localhost:50000``, as on a cluster where every TaskManager host runs its own pool. On one machine
  the TaskManagers get different loopback addresses (127.0.0.2, 127.0.0.3, …) for the name
  ``localhost`` through a JVM hosts file, and each pool listens on its TaskManager's address. One pool
  shared by two TaskManagers does not work: both name their first worker ``1-1``, and one's stop
  request kills the other's worker.

The workers reach S3 and the KVS with the environment of the process that started the cluster
(``AWS_*`` variables, or the host's role on a real cluster): those services need addresses fixed before
the cluster starts.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from runners import engines
from runners.processes import free_port, group_alive, is_running

POOL_PORT = 50000  # the worker pool's port, as Beam's docs and SDK container use it
# What Flink's own config.yaml passes to every Flink JVM on Java 17 (env.java.opts.all): Flink and Kryo
# reach into these JDK internals.
FLINK_JAVA_OPTS = [
    *(f"--add-exports={m}=ALL-UNNAMED" for m in (
        "java.base/sun.net.util", "java.rmi/sun.rmi.registry", "jdk.compiler/com.sun.tools.javac.api",
        "jdk.compiler/com.sun.tools.javac.file", "jdk.compiler/com.sun.tools.javac.parser",
        "jdk.compiler/com.sun.tools.javac.tree", "jdk.compiler/com.sun.tools.javac.util",
        "java.security.jgss/sun.security.krb5")),
    *(f"--add-opens=java.base/{p}=ALL-UNNAMED" for p in (
        "java.lang", "java.net", "java.io", "java.nio", "sun.nio.ch", "java.lang.reflect", "java.text",
        "java.time", "java.util", "java.util.concurrent", "java.util.concurrent.atomic",
        "java.util.concurrent.locks")),
]
# Spark's launcher adds these on Java 17 (JavaModuleOptions); the Master and Worker need them too.
SPARK_JAVA_OPTS = [f"--add-opens=java.base/{p}=ALL-UNNAMED" for p in (
    "java.lang", "java.lang.invoke", "java.lang.reflect", "java.io", "java.net", "java.nio", "java.util",
    "java.util.concurrent", "java.util.concurrent.atomic", "sun.nio.ch", "sun.nio.cs",
    "sun.security.action", "sun.util.calendar")] + ["-Djdk.reflect.useDirectMethodHandle=false"]

# One TaskManager's memory, as Flink's start script would compute it and hand it over (-D and JVM
# flags); started directly, a TaskManager refuses to run without every one of these set. 256m of network
# buffers is what 2 slots need ("Insufficient number of network buffers" at 128m).
TASKMANAGER_MEMORY_MB = {
    "framework.heap.size": 128, "task.heap.size": 512, "framework.off-heap.size": 128,
    "task.off-heap.size": 0, "network.min": 256, "network.max": 256, "managed.size": 128,
    "jvm-metaspace.size": 256, "jvm-overhead.min": 192, "jvm-overhead.max": 192,
}

# Beam options that make a Flink job restart after losing a TaskManager. Beam 2.62 translates a batch
# pipeline to Flink's DataSet API and gives it no restart strategy (--number_of_execution_retries is
# applied to DataStream jobs only, and Flink 1.19 takes none from a job's configuration), so a lost JVM
# fails the job unless the cluster's own config sets one. With --streaming the same pipeline is
# translated to a DataStream job, which gets a fixed-delay strategy from these options. The delay
# outlasts heartbeat.timeout below: the restarted job is not placed on the lost TaskManager's slots.
FLINK_RESTARTS = ["--streaming", "--number_of_execution_retries=3", "--execution_retry_delay=12000"]

# Beam closes a Python SDK worker when a stage of a batch job ends and boots a new one for the next
# stage (five per Flink TaskManager for this job, twelve on Spark, each a Python start importing Beam
# and the audio stack), unless the job keeps it for a while. On Flink that takes effect only where
# Beam's runner classes load from the TaskManager's own classpath (a parent-first class loader, as this
# cluster's config sets, or Flink [local] in the job server): a job jar's own copy of them releases the
# worker at once. Spark's executors load them parent-first by default.
SDK_WORKER_REUSE = ["--environment_cache_millis=60000"]

DEFAULT_PORTS = {
    "flink": {"rest": 8081, "rpc": 6123, "job": 8099, "artifact": 8098, "expansion": 8097},
    "spark": {"master": 7077, "master_ui": 8080, "worker_ui": 8082, "job": 8199, "artifact": 8198,
              "expansion": 8197},
}


def default_state(engine: str) -> Path:
    return engines.cache_dir() / "clusters" / engine


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


def java() -> str:
    home = os.environ.get("JAVA_HOME")
    return str(Path(home) / "bin" / "java") if home else (shutil.which("java") or "java")


@dataclass
class Process:
    role: str
    pid: int
    ports: dict[str, int]
    log: str
    host: str = "127.0.0.1"

    def alive(self) -> bool:
        return is_running(self.pid)  # a zombie (killed, not yet reaped) is not serving


@dataclass
class Cluster:
    """What ``start`` left running, saved as ``state/cluster.json``."""
    engine: str
    state: str
    sdk_workers: str
    ports: dict[str, int]
    beam_options: list[str]
    processes: list[Process] = field(default_factory=list)

    @property
    def folder(self) -> Path:
        return Path(self.state)

    def save(self) -> None:
        (self.folder / "cluster.json").write_text(json.dumps(asdict(self), indent=1) + "\n")

    @classmethod
    def load(cls, state: Path) -> Cluster | None:
        path = Path(state) / "cluster.json"
        if not path.is_file():
            return None
        data = json.loads(path.read_text())
        data["processes"] = [Process(**p) for p in data["processes"]]
        return cls(**data)

    def role(self, role: str) -> Process:
        return next(p for p in self.processes if p.role == role)

    def launch(self, role: str, command: list[str], ports: dict[str, int], *, env: dict | None = None,
               host: str = "127.0.0.1", cwd: Path | None = None) -> Process:
        """Start one server in its own session (its workers die with its group), logging to a file."""
        log = self.folder / "logs" / f"{role}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True, env=env, cwd=cwd or self.folder)
        process = Process(role, child.pid, ports, str(log), host)
        self.processes.append(process)
        self.save()
        return process

    def wait_for_port(self, process: Process, port: int, timeout_s: float = 120) -> None:
        deadline = time.time() + timeout_s
        while not port_open(port, process.host):
            if not process.alive() or time.time() > deadline:
                tail = Path(process.log).read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{self.engine} {process.role} did not listen on {process.host}:{port}"
                                   f" (log {process.log}):\n{tail}")
            time.sleep(0.3)

    def stop(self, role: str | None = None) -> list[str]:
        """Stop every process (or those of one role), newest first, with the workers they started."""
        stopped = []
        for process in reversed([p for p in self.processes if role is None or p.role == role]):
            stop_group(process.pid)
            self.processes.remove(process)
            stopped.append(process.role)
        self.save()
        return stopped

    def kill(self, role: str) -> int:
        """SIGKILL one JVM, as a crashed machine would lose it (its SDK workers are left to notice)."""
        process = self.role(role)
        os.kill(process.pid, signal.SIGKILL)
        return process.pid

    def describe(self) -> list[str]:
        lines = []
        for p in self.processes:
            listens = ", ".join(f"{name} {p.host}:{port}" for name, port in p.ports.items())
            lines.append(f"{p.role:<14} pid {p.pid:<8} {'up  ' if p.alive() else 'DOWN'}  {listens}"
                         f"  (log {p.log})")
        return lines


def stop_group(pid: int, grace_s: float = 15) -> None:
    """SIGTERM the process group a server leads (JVM plus the SDK workers or executors it started),
    then SIGKILL what is left."""
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        pgid = pid  # the leader is gone; its group may still hold its workers
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.time() + wait
        while time.time() < deadline:
            if not group_alive(pgid):
                return
            time.sleep(0.2)


def pick_ports(engine: str, free: bool) -> dict[str, int]:
    return {name: free_port() if free else port for name, port in DEFAULT_PORTS[engine].items()}


def boot_script(folder: Path) -> Path:
    """The SDK workers' executable: this interpreter booting a worker as Beam's container does."""
    boot = folder / "boot.sh"
    boot.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m runners.worker_boot "$@"\n')
    boot.chmod(0o755)
    return boot


def process_options(folder: Path) -> list[str]:
    return ["--environment_type=PROCESS",
            "--environment_config=" + json.dumps({"command": str(boot_script(folder))})]


def job_server_command(engine: engines.JavaEngine, folder: Path, master_flag: str, ports: dict[str, int],
                       java_opts: list[str] = ()) -> list[str]:
    return [java(), *java_opts, f"-Dvoicelake.cluster={folder}", "-jar", str(engine.jar()), master_flag,
            "--job-host=127.0.0.1", f"--job-port={ports['job']}", f"--artifact-port={ports['artifact']}",
            f"--expansion-port={ports['expansion']}", f"--artifacts-dir={folder / 'artifacts'}"]


def require_engine(engine: engines.JavaEngine) -> None:
    if not (engine.jar().is_file() and engine.lib().is_dir()):
        raise SystemExit(f"{engine.name} is not fetched: no {engine.jar()}; run bash runners/fetch_engines.sh "
                         f"{engine.name}")


def fresh_state(engine: str, state: Path | None) -> Path:
    folder = Path(state or default_state(engine)).resolve()
    running = Cluster.load(folder)
    if running and any(p.alive() for p in running.processes):
        raise SystemExit(f"a {engine} cluster is already running from {folder} "
                         f"(python -m runners.clusters {engine} stop --state {folder})")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


# --- Flink -------------------------------------------------------------------------------------------

def flink_config(ports: dict[str, int], slots: int, taskmanagers: int, folder: Path) -> dict[str, str]:
    return {
        # working folders (a TaskManager's blob cache keeps every job's jar) inside the cluster's state,
        # which the next start clears, not in /tmp under a name each cluster reuses
        "io.tmp.dirs": str(folder / "tmp"),
        "jobmanager.rpc.address": "127.0.0.1", "jobmanager.rpc.port": str(ports["rpc"]),
        "jobmanager.bind-host": "127.0.0.1", "rest.address": "127.0.0.1", "rest.bind-address": "127.0.0.1",
        "rest.port": str(ports["rest"]), "jobmanager.memory.process.size": "1024m",
        "taskmanager.numberOfTaskSlots": str(slots), "parallelism.default": str(slots * taskmanagers),
        # a lost TaskManager is noticed within seconds, not the default 50 s
        "heartbeat.interval": "2000", "heartbeat.timeout": "10000",
        # both TaskManagers get work, so losing either loses running tasks
        "cluster.evenly-spread-out-slots": "true",
        # Beam's runner classes from the TaskManager's own classpath (the same release), not the job's
        # copy: see SDK_WORKER_REUSE
        "classloader.resolve-order": "parent-first",
        **{f"taskmanager.memory.{k}": f"{v}m" for k, v in TASKMANAGER_MEMORY_MB.items()},
        "taskmanager.cpu.cores": str(float(slots)),
    }


def taskmanager_jvm_flags() -> list[str]:
    m = TASKMANAGER_MEMORY_MB
    heap = m["framework.heap.size"] + m["task.heap.size"]
    direct = m["framework.off-heap.size"] + m["task.off-heap.size"] + m["network.max"]
    return [f"-Xmx{heap}m", f"-Xms{heap}m", f"-XX:MaxDirectMemorySize={direct}m",
            f"-XX:MaxMetaspaceSize={m['jvm-metaspace.size']}m"]


def loopback_hosts(folder: Path, index: int) -> tuple[str, Path]:
    """TaskManager ``index``'s own loopback address, and a JVM hosts file naming it ``localhost``."""
    address = f"127.0.0.{index + 2}"
    hosts = folder / f"hosts-{index}"
    hosts.write_text(f"{address} localhost\n127.0.0.1 {socket.gethostname()}\n")
    return address, hosts


def start_flink(state: Path | None = None, *, taskmanagers: int = 2, slots: int = 1,
                sdk_workers: str = "process", free_ports: bool = False) -> Cluster:
    engine = engines.FLINK
    require_engine(engine)
    folder = fresh_state("flink", state)
    ports = pick_ports("flink", free_ports)
    conf = folder / "conf"
    conf.mkdir()
    (folder / "tmp").mkdir()
    (conf / "flink-conf.yaml").write_text(
        "".join(f"{k}: {v}\n" for k, v in flink_config(ports, slots, taskmanagers, folder).items()))
    env = {**os.environ, "FLINK_CONF_DIR": str(conf)}
    classpath = ["-cp", f"{engine.lib()}/*"]
    mark = f"-Dvoicelake.cluster={folder}"
    if sdk_workers == "process":
        options = process_options(folder)
    elif sdk_workers == "external":
        options = ["--environment_type=EXTERNAL", f"--environment_config=localhost:{POOL_PORT}"]
        boot = boot_script(folder)
    else:
        raise ValueError(f"sdk workers must be process or external, not {sdk_workers!r}")
    # The job server is started without the cluster's config (it needs only --flink-master), so the
    # parallelism, one subtask per slot, goes with the job as an option.
    cluster = Cluster("flink", str(folder), sdk_workers, ports, [
        "--runner=PortableRunner", f"--job_endpoint=127.0.0.1:{ports['job']}",
        f"--parallelism={slots * taskmanagers}", *options, *SDK_WORKER_REUSE])
    try:
        jobmanager = cluster.launch("jobmanager", [
            java(), "-Xmx512m", "-Xms512m", *FLINK_JAVA_OPTS, mark, *classpath,
            "org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint", "--configDir", str(conf)],
            {"rest": ports["rest"], "rpc": ports["rpc"]}, env=env)
        for i in range(taskmanagers):
            host_flags, host = [], "127.0.0.1"
            if sdk_workers == "external":
                host, hosts = loopback_hosts(folder, i)
                host_flags = [f"-Djdk.net.hosts.file={hosts}"]
                cluster.launch(f"sdk-pool-{i + 1}", [
                    sys.executable, "-m", "runners.worker_pool", f"--host={host}", f"--port={POOL_PORT}",
                    f"--container_executable={boot}"], {"pool": POOL_PORT}, host=host)
            cluster.launch(f"taskmanager-{i + 1}", [
                java(), *taskmanager_jvm_flags(), *FLINK_JAVA_OPTS, *host_flags, mark, *classpath,
                "org.apache.flink.runtime.taskexecutor.TaskManagerRunner", "--configDir", str(conf),
                "-D", f"taskmanager.host={host}", "-D", f"taskmanager.bind-host={host}",
                "-D", f"taskmanager.resource-id=taskmanager-{i + 1}"], {}, env=env, host=host)
        cluster.wait_for_port(jobmanager, ports["rest"])
        wait_for_taskmanagers(cluster, taskmanagers)
        job_server = cluster.launch("job-server", job_server_command(
            engine, folder, f"--flink-master=127.0.0.1:{ports['rest']}", ports),
            {k: ports[k] for k in ("job", "artifact", "expansion")})
        cluster.wait_for_port(job_server, ports["job"])
        for pool in (p for p in cluster.processes if p.role.startswith("sdk-pool")):
            cluster.wait_for_port(pool, POOL_PORT)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def flink_rest(cluster: Cluster, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{cluster.ports['rest']}{path}", timeout=5) as r:
        return json.load(r)


def wait_for_taskmanagers(cluster: Cluster, count: int, timeout_s: float = 120) -> None:
    deadline = time.time() + timeout_s
    while True:
        try:
            if len(flink_rest(cluster, "/taskmanagers")["taskmanagers"]) >= count:
                return
        except OSError:
            pass
        down = [p for p in cluster.processes if not p.alive()]
        if down or time.time() > deadline:
            what = down[0] if down else cluster.processes[-1]
            tail = Path(what.log).read_text(errors="replace")[-3000:]
            raise RuntimeError(f"flink: {count} TaskManagers did not register (log {what.log}):\n{tail}")
        time.sleep(0.5)


# --- Spark -------------------------------------------------------------------------------------------

def spark_home(folder: Path, engine: engines.JavaEngine) -> Path:
    """What Spark's Worker needs of a distribution to start executors: jars/ and a RELEASE file."""
    home = folder / "spark-home"
    home.mkdir()
    (home / "jars").symlink_to(engine.lib())
    (home / "RELEASE").write_text("")
    return home


def spark_env(folder: Path) -> dict[str, str]:
    """What Spark's scripts (load-spark-env.sh) would have set for its JVMs."""
    return {**os.environ, "SPARK_HOME": str(folder / "spark-home"),
            # the Worker's launcher finds the executor's jars by it ("Cannot find any build directories")
            "SPARK_SCALA_VERSION": "2.12",
            # else the driver and executors advertise the machine's first non-loopback address
            "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_WORKER_DIR": str(folder / "work"), "SPARK_LOG_DIR": str(folder / "logs")}


def start_spark(state: Path | None = None, *, worker_cores: int = 2, worker_memory: str = "2g",
                sdk_workers: str = "process", free_ports: bool = False) -> Cluster:
    engine = engines.SPARK
    require_engine(engine)
    folder = fresh_state("spark", state)
    ports = pick_ports("spark", free_ports)
    spark_home(folder, engine)
    env = spark_env(folder)
    if sdk_workers != "process":
        raise ValueError("spark-cluster runs PROCESS SDK workers (in each executor)")
    master_url = f"spark://127.0.0.1:{ports['master']}"
    cluster = Cluster("spark", str(folder), sdk_workers, ports, [
        "--runner=PortableRunner", f"--job_endpoint=127.0.0.1:{ports['job']}", *process_options(folder),
        *SDK_WORKER_REUSE])
    classpath = ["-cp", f"{engine.lib()}/*"]
    mark = f"-Dvoicelake.cluster={folder}"
    try:
        master = cluster.launch("master", [
            java(), "-Xmx512m", *SPARK_JAVA_OPTS, mark, *classpath, "org.apache.spark.deploy.master.Master",
            "--host", "127.0.0.1", "--port", str(ports["master"]), "--webui-port", str(ports["master_ui"])],
            {"master": ports["master"], "ui": ports["master_ui"]}, env=env)
        cluster.wait_for_port(master, ports["master"])
        start_spark_worker(cluster, env, worker_cores, worker_memory)
        job_server = cluster.launch("job-server", job_server_command(
            engine, folder, f"--spark-master-url={master_url}", ports, SPARK_JAVA_OPTS),
            {k: ports[k] for k in ("job", "artifact", "expansion")}, env=env)
        cluster.wait_for_port(job_server, ports["job"])
    except BaseException:
        cluster.stop()
        raise
    return cluster


def start_spark_worker(cluster: Cluster, env: dict | None = None, cores: int = 2, memory: str = "2g") -> None:
    """One Worker (again, after a lost one: what a supervisor would do), registered with the master."""
    engine, ports, folder = engines.SPARK, cluster.ports, cluster.folder
    env = env or spark_env(folder)
    cluster.launch("worker", [
        java(), "-Xmx512m", *SPARK_JAVA_OPTS, f"-Dvoicelake.cluster={folder}", "-cp", f"{engine.lib()}/*",
        "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--cores", str(cores),
        "--memory", memory, "--webui-port", str(ports["worker_ui"]),
        f"spark://127.0.0.1:{ports['master']}"], {"ui": ports["worker_ui"]}, env=env)
    deadline = time.time() + 120
    while spark_alive_workers(cluster) < 1:
        worker = cluster.role("worker")
        if not worker.alive() or time.time() > deadline:
            tail = Path(worker.log).read_text(errors="replace")[-3000:]
            raise RuntimeError(f"spark: the worker did not register (log {worker.log}):\n{tail}")
        time.sleep(0.5)


def spark_alive_workers(cluster: Cluster) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{cluster.ports['master_ui']}/json/", timeout=5) as r:
            return int(json.load(r).get("aliveworkers", 0))
    except OSError:
        return 0


# --- the command ---------------------------------------------------------------------------------------

def start(engine: str, state: Path | None = None, **settings) -> Cluster:
    return {"flink": start_flink, "spark": start_spark}[engine](state, **settings)


def print_cluster(cluster: Cluster) -> None:
    print(f"{cluster.engine} cluster at {cluster.state} (SDK workers: {cluster.sdk_workers})")
    for line in cluster.describe():
        print(f"  {line}")
    if cluster.engine == "flink":
        print(f"  Flink web UI: http://127.0.0.1:{cluster.ports['rest']}")
    else:
        print(f"  Spark master: spark://127.0.0.1:{cluster.ports['master']}, "
              f"web UI: http://127.0.0.1:{cluster.ports['master_ui']}")
    print("  submit with: voicelake run … " + " ".join(f"'{o}'" if "{" in o else o for o in cluster.beam_options))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m runners.clusters",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("engine", choices=["flink", "spark"])
    parser.add_argument("action", choices=["start", "status", "stop"])
    parser.add_argument("--state", type=Path, default=None,
                        help="folder holding the cluster's config, logs and cluster.json "
                             "(default: <engines cache>/clusters/<engine>)")
    parser.add_argument("--taskmanagers", type=int, default=2, help="flink: TaskManager JVMs")
    parser.add_argument("--slots", type=int, default=1, help="flink: task slots per TaskManager")
    parser.add_argument("--worker-cores", type=int, default=2, help="spark: cores the worker offers")
    parser.add_argument("--sdk-workers", choices=["process", "external"], default="process")
    parser.add_argument("--free-ports", action="store_true",
                        help="listen on free ports instead of the defaults (Flink REST 8081, Spark 7077, …)")
    args = parser.parse_args(argv)
    state = (args.state or default_state(args.engine)).resolve()
    if args.action == "start":
        settings = ({"taskmanagers": args.taskmanagers, "slots": args.slots} if args.engine == "flink"
                    else {"worker_cores": args.worker_cores})
        print_cluster(start(args.engine, state, sdk_workers=args.sdk_workers, free_ports=args.free_ports,
                            **settings))
        return 0
    cluster = Cluster.load(state)
    if cluster is None or not cluster.processes:
        print(f"no {args.engine} cluster at {state}")
        return 0 if args.action == "stop" else 1
    if args.action == "status":
        print_cluster(cluster)
        return 0 if all(p.alive() for p in cluster.processes) else 1
    print(f"stopped {', '.join(cluster.stop())}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
