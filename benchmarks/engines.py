"""The same seeded calls on every engine, from one run: wall time, audio-hours per CPU-hour (JVMs and
SDK workers counted), throttled responses the KVS emulator sent, peak RSS per process, and the speed-up
of 2 TaskManagers over 1 on a standalone Flink cluster.

Each job runs as `voicelake run` in a child process with the engine's options (`runners/launch.py`, the
same code as `voicelake demo --engine`). CPU counted: that child and everything it started (job-server
JVMs, Prism, SDK workers), plus, for a standalone cluster, every process of the cluster (JobManager,
TaskManagers, master, worker, executors and the SDK workers they start), as their CPU grew during the
job. A cluster's start-up is not in the wall time (a cluster outlives one night's job); an embedded
engine's JVM start-up is. Each cluster runs the job twice: cold (its JVMs' first job, JIT compilation
included) and warm. The local S3 and KVS emulator serve from this process and are not counted (their CPU
is printed).
The emulator paces like KVS (5 requests per second per stream and API). Timings are printed, never
asserted.

    python -m benchmarks.engines [--engines fnapi,prism,…] [--connect-calls 32 --connect-streams 16]
        [--chime-calls 16 --chime-streams 16] [--call-seconds 900] [--keep]
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import threading
from collections import defaultdict
from pathlib import Path

from benchmarks.measure import run_watched, seeded_world_arguments
from runners import clusters, engines, processes
from runners.launch import engine_options
from runners.local.fingerprint import lake_fingerprint
from runners.local.kvs_emulator import start_emulator
from runners.local.kvs_store import KvsStore
from runners.local.s3 import environment, local_s3
from runners.local.seed import PREFIX_CTR, PREFIX_EVENTS, PREFIX_SDR, seed_world

ROOT = Path(__file__).resolve().parents[1]

# (label, engine, cluster settings)
RUNS = [
    ("fnapi (2 worker processes)", "fnapi", None),
    ("prism", "prism", None),
    ("flink [local], parallelism 2", "flink", None),
    ("flink-cluster, 1 TaskManager", "flink-cluster", {"taskmanagers": 1}),
    ("flink-cluster, 2 TaskManagers", "flink-cluster", {"taskmanagers": 2}),
    ("spark local[2]", "spark", None),
    ("spark-cluster (1 worker, 2 cores)", "spark-cluster", None),
]
# what a process is, from its command line
KINDS = [("sdk_worker_main", "SDK worker"), ("runners.worker_boot", "SDK worker"),
         ("CoarseGrainedExecutorBackend", "executor"), ("JobServerDriver", "job server"),
         ("-job-server-", "job server"), ("TaskManagerRunner", "TaskManager"),
         ("StandaloneSessionClusterEntrypoint", "JobManager"), ("deploy.master.Master", "master"),
         ("deploy.worker.Worker", "worker"), ("runners.worker_pool", "SDK pool"), ("prism", "prism"),
         ("pipeline.cli", "voicelake run")]


def kind(pid: int) -> str:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "?"
    if not cmd:  # exited, not yet reaped
        return "?"
    return next((name for marker, name in KINDS if marker in cmd), cmd.split(" ")[0].rsplit("/", 1)[-1])


def own_cpu(pid: int) -> float:
    """CPU seconds of one process itself (utime + stime), 0 if it is gone."""
    process = processes.stat(pid)
    return process.cpu_s if process else 0.0


class Watch(threading.Thread):
    """Samples every process of a job: its peak RSS (VmHWM) and the CPU it spent during the job, keyed
    by what the process is. A process's CPU is its last sample (a worker that lives less than one
    sampling period is missed: the job's CPU total does not depend on this)."""

    def __init__(self, roots: set[int], groups: set[int]):
        super().__init__(daemon=True)
        self.roots, self.groups, self.done = roots, groups, threading.Event()
        self.peak: dict[int, tuple[str, float]] = {}
        self.cpu: dict[int, float] = {}
        table = processes.process_table()
        self.cpu_before = {pid: table[pid].cpu_s for pid in processes.members(table, set(), groups)}

    def run(self):
        while not self.done.wait(0.2):
            for pid in processes.members(processes.process_table(), self.roots, self.groups):
                hwm = processes.peak_rss_mb(pid)
                # asked every time: a process may exec into another (jspawnhelper -> SDK worker)
                name, before = self.peak.get(pid, ("?", 0.0))
                now = kind(pid)
                self.peak[pid] = (name if now == "?" else now, max(hwm, before))
                self.cpu[pid] = max(self.cpu.get(pid, 0.0), own_cpu(pid) - self.cpu_before.get(pid, 0.0))

    def _kinds(self, values: dict[int, float]) -> dict[str, list[float]]:
        kinds = defaultdict(list)
        for pid, value in values.items():
            if value:
                kinds[self.peak[pid][0]].append(value)
        return kinds

    def rss_by_kind(self) -> str:
        kinds = self._kinds({pid: mb for pid, (_, mb) in self.peak.items()})
        return ", ".join(f"{name} {max(mbs):.0f}" + (f" (x{len(mbs)})" if len(mbs) > 1 else "")
                         for name, mbs in sorted(kinds.items(), key=lambda kv: -max(kv[1])))

    def cpu_by_kind(self) -> str:
        kinds = {name: sum(s) for name, s in self._kinds(self.cpu).items()}
        return ", ".join(f"{name} {s:.1f}" for name, s in sorted(kinds.items(), key=lambda kv: -kv[1]))


def cluster_groups(folder: Path) -> set[int]:
    cluster = clusters.Cluster.load(folder / "cluster")
    return {p.pid for p in cluster.processes} if cluster else set()  # each leads its own group


def flink_timeline(folder: Path) -> str:
    """The newest job's longest stages on a Flink cluster (from its REST API): where the wall time went."""
    cluster = clusters.Cluster.load(folder / "cluster")
    if cluster is None or cluster.engine != "flink":
        return ""
    jobs = clusters.flink_rest(cluster, "/jobs/overview")["jobs"]
    job = clusters.flink_rest(cluster, f"/jobs/{max(jobs, key=lambda j: j['start-time'])['jid']}")
    start = job["start-time"]
    stages = sorted(job["vertices"], key=lambda v: -v["duration"])[:4]
    return "; ".join(f"{(v['start-time'] - start) / 1000:.1f}+{v['duration'] / 1000:.1f} s "
                     f"{v['name'][:60]}" for v in stages) + f"; job {job['duration'] / 1000:.1f} s"


def group_cpu(groups: set[int]) -> float:
    """CPU seconds of every process in the groups, with the children they have reaped."""
    table = processes.process_table()
    return sum(table[p].total_cpu_s for p in processes.members(table, set(), groups))


def measure_job(command: list[str], groups: set[int]) -> dict:
    cluster_cpu = group_cpu(groups)
    served = os.times()
    wall, usage, watch = run_watched(command, lambda pid: Watch({pid}, groups))
    served = sum(os.times()[:2]) - sum(served[:2])
    cpu = usage.ru_utime + usage.ru_stime + group_cpu(groups) - cluster_cpu
    return {"wall_s": wall, "cpu_s": cpu, "rss": watch.rss_by_kind(), "cpu_kinds": watch.cpu_by_kind(),
            "served_cpu_s": served}


class ThrottleCount:
    """Counts the requests the emulator's KVS-like pacing refused (ClientLimitExceededException)."""

    def __init__(self, limiter):
        self.refused, self._admit = 0, limiter.admit
        limiter.admit = self.admit

    def admit(self, key) -> bool:
        admitted = self._admit(key)
        self.refused += not admitted
        return admitted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engines", default=",".join(dict.fromkeys(engine for _, engine, _ in RUNS)),
                        help="which engines to run, comma-separated; they run in the order above, and every lake "
                             "is compared with the first one's")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (lakes, cluster logs)")
    # 12 audio-hours on 32 streams by default: enough work for two TaskManagers to share (a night of a few
    # calls is all start-up, and a few streams cannot be split evenly)
    config, work, args = seeded_world_arguments(
        "voicelake-engines-", connect_calls=32, connect_streams=16, chime_calls=16, chime_streams=16,
        call_seconds=900.0, bucket="engines", parser=parser)
    chosen = args.engines.split(",")
    try:
        run_engines(config, work, chosen, args.keep)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)  # lakes and streams of a large night: gigabytes


def run_engines(config, work: Path, chosen: list[str], keep: bool) -> None:
    results = []  # (label, measurement or why not run)
    # fixed ports before any cluster starts: its workers inherit the S3 address from this environment
    with local_s3(port=processes.free_port()) as s3, start_emulator(work / "kvs", port=processes.free_port()) as kvs, \
            environment(s3.environment()):
        truth = seed_world(s3.client(), KvsStore(work / "kvs"), config)
        audio_h = sum(c["channels"][0]["samples"] for c in truth.calls) / 8000 / 3600
        throttles = ThrottleCount(kvs.service.limiter)
        bucket = f"s3://{config.bucket}/"
        for n, (label, engine, settings) in enumerate(r for r in RUNS if r[1] in chosen):
            folder, lake = work / f"engine-{n}", work / f"lake-{n}"
            command = [sys.executable, "-m", "pipeline.cli", "run", f"--date={config.date}",
                       f"--ctr_prefix={bucket}{PREFIX_CTR}", f"--sdr_prefix={bucket}{PREFIX_SDR}",
                       f"--events_prefix={bucket}{PREFIX_EVENTS}", f"--output={lake}",
                       f"--kvs_endpoint_url={kvs.url}", "--default_sdk_harness_log_level=WARN"]
            # A cluster outlives one night's job: its second job (the same date again, which must write
            # the same lake) shows it warm, its JVMs past start-up and JIT compilation.
            jobs = ["cold", "warm, 2nd job"] if engine.endswith("-cluster") else [None]
            try:
                with engine_options(engine, folder, cluster=settings, announce=lambda line: None) as options:
                    for job in jobs:
                        before = throttles.refused
                        m = measure_job(command + options, cluster_groups(folder))
                        m["throttled"] = throttles.refused - before
                        m["lake"] = lake_fingerprint(lake)
                        m["timeline"] = flink_timeline(folder)
                        if not keep:  # a large night's lake is gigabytes; one at a time on disk
                            shutil.rmtree(lake, ignore_errors=True)
                        results.append((f"{label} ({job})" if job else label, m))
            except SystemExit as reason:  # an engine that is not fetched, or a failed job
                lines = str(reason).splitlines()
                results.append((label, next((line for line in reversed(lines) if "run failed:" in line), lines[0])))
    measured = [(label, m) for label, m in results if isinstance(m, dict)]
    reference = measured[0][1]["lake"] if measured else None
    print(f"{len(truth.calls)} calls, {audio_h * 60:.1f} audio-minutes, {os.cpu_count()} CPUs, "
          f"Beam SDK {engines.sdk_version()}, Java runners {engines.RUNNER_RELEASE}")
    print(f"{'engine':50} {'wall s':>7} {'CPU s':>7} {'audio-h/CPU-h':>14} {'throttled':>9} {'same lake':>9}"
          f"  peak RSS MB per process")
    for label, m in results:
        if not isinstance(m, dict):
            print(f"{label:50} not run: {m}")
            continue
        print(f"{label:50} {m['wall_s']:7.1f} {m['cpu_s']:7.1f} {audio_h / (m['cpu_s'] / 3600):14.0f} "
              f"{m['throttled']:9d} {'yes' if m['lake'] == reference else 'NO':>9}  {m['rss']}")
    print("\nCPU s per kind of process, sampled (a worker shorter than 0.2 s is missed)")
    for label, m in measured:
        print(f"{label:50} {m['cpu_kinds']}; not counted: local S3, KVS emulator and sampling "
              f"{m['served_cpu_s']:.1f}")
    print("\nthe longest stages of each Flink cluster job: start+duration s, from the job's start")
    for label, m in measured:
        if m["timeline"]:
            print(f"{label:50} {m['timeline']}")
    walls = {label: m["wall_s"] for label, m in measured}
    for job in ("cold", "warm, 2nd job"):
        one = walls.get(f"flink-cluster, 1 TaskManager ({job})")
        two = walls.get(f"flink-cluster, 2 TaskManagers ({job})")
        if one and two:
            print(f"speed-up of 2 TaskManagers over 1 (flink-cluster, {job}, wall): {one / two:.2f}x")


if __name__ == "__main__":
    main()
