"""The same seeded calls on every engine this machine can run, from one run: wall time, CPU,
audio-hours per CPU-hour and the speed-up of 2 workers over 1.

Each engine runs `voicelake run` as a child process tree (JVMs would be counted the same way);
the local S3 and KVS emulator serve from this process and are not counted.  Engines that need a
job-server jar (Flink, Spark) are listed as missing when `runners/fetch_engines.sh` could not get
it.  Timings are printed, never asserted.

    python benchmarks/engines.py [--connect-calls 4] [--chime-calls 2] [--call-seconds 180]
"""
from __future__ import annotations

import filecmp
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from measure import measured, seeded_world_arguments  # noqa: E402
from runners import engines  # noqa: E402
from runners.local.kvs_emulator import start_emulator  # noqa: E402
from runners.local.kvs_store import KvsStore  # noqa: E402
from runners.local.processes import free_port, job_service_command, serving  # noqa: E402
from runners.local.s3 import environment, local_s3  # noqa: E402
from runners.local.seed import PREFIX_CTR, PREFIX_EVENTS, PREFIX_SDR, seed_world  # noqa: E402


def engine_options(job_port: int) -> dict[str, list[str] | str]:
    """Engine name -> Beam options, or the reason it cannot run here."""
    options: dict[str, list[str] | str] = {
        "FnApiRunner, 1 worker process": ["--runner=FnApiRunner", "--direct_running_mode=multi_processing",
                                          "--direct_num_workers=1"],
        "FnApiRunner, 2 worker processes": ["--runner=FnApiRunner", "--direct_running_mode=multi_processing",
                                            "--direct_num_workers=2"],
        "PortableRunner, local job service, LOOPBACK": [
            "--runner=PortableRunner", f"--job_endpoint=localhost:{job_port}", "--environment_type=LOOPBACK"],
    }
    prism = engines.prism_path()
    options["DirectRunner on Prism"] = (["--runner=DirectRunner", f"--prism_location={prism}"] if prism
                                        else "Prism is not built (bash runners/fetch_engines.sh prism)")
    for engine in ("flink", "spark"):
        jar = engines.job_server_jar(engine)
        if jar is None:
            options[f"{engine.title()}Runner"] = "no Beam 2.77.0 job-server jar (not served by the registry here)"
        elif engine == "flink":
            options["FlinkRunner [local], parallelism 1"] = [
                "--runner=FlinkRunner", "--flink_master=[local]", "--parallelism=1",
                f"--flink_job_server_jar={jar}", "--environment_type=LOOPBACK"]
            options["FlinkRunner [local], parallelism 2"] = [
                "--runner=FlinkRunner", "--flink_master=[local]", "--parallelism=2",
                f"--flink_job_server_jar={jar}", "--environment_type=LOOPBACK"]
        else:
            options["SparkRunner local[2]"] = ["--runner=SparkRunner", "--spark_master_url=local[2]",
                                               f"--spark_job_server_jar={jar}", "--environment_type=LOOPBACK"]
    return options


def same_lake(a: Path, b: Path) -> bool:
    files = lambda root: sorted(p.relative_to(root) for p in root.rglob("*")  # noqa: E731
                                if p.is_file() and p.parts[len(root.parts)] != "_runs")
    return files(a) == files(b) and all(filecmp.cmp(a / f, b / f, shallow=False) for f in files(a))


def main() -> None:
    config, work = seeded_world_arguments("voicelake-engines-", connect_calls=4, chime_calls=2,
                                          call_seconds=180.0, bucket="engines")
    port = free_port()
    results = []
    with serving(job_service_command(port), port):
        with local_s3() as s3, start_emulator(work / "kvs", tps_limit=None) as kvs, \
                environment(s3.environment()):
            truth = seed_world(s3.client(), KvsStore(work / "kvs"), config)
            audio_h = sum(c["channels"][0]["samples"] for c in truth.calls) / 8000 / 3600
            bucket = f"s3://{config.bucket}/"
            for n, (name, options) in enumerate(engine_options(port).items()):
                if isinstance(options, str):
                    results.append((name, options, None))
                    continue
                lake = work / f"lake-{n}"
                results.append((name, measured([
                    sys.executable, "-m", "pipeline.cli", "run", f"--date={config.date}",
                    f"--ctr_prefix={bucket}{PREFIX_CTR}", f"--sdr_prefix={bucket}{PREFIX_SDR}",
                    f"--events_prefix={bucket}{PREFIX_EVENTS}", f"--output={lake}",
                    f"--kvs_endpoint_url={kvs.url}", *options], dict(os.environ)), lake))
    reference = next(lake for _, m, lake in results if lake is not None)
    print(f"{len(truth.calls)} calls, {audio_h * 60:.1f} audio-minutes, {os.cpu_count()} CPUs")
    print(f"{'engine':46} {'wall s':>7} {'CPU s':>7} {'audio-h/CPU-h':>14} {'peak RSS MB':>12} {'same lake':>10}")
    for name, m, lake in results:
        if lake is None:
            print(f"{name:46} not run: {m}")
            continue
        print(f"{name:46} {m['wall_s']:7.1f} {m['cpu_s']:7.1f} {audio_h / (m['cpu_s'] / 3600):14.0f} "
              f"{m['peak_rss_mb']:12.0f} {'yes' if same_lake(reference, lake) else 'NO':>10}")
    walls = {name: m["wall_s"] for name, m, lake in results if lake is not None}
    one, two = walls["FnApiRunner, 1 worker process"], walls["FnApiRunner, 2 worker processes"]
    print(f"speed-up of 2 worker processes over 1 (FnApiRunner, wall): {one / two:.2f}x")
    if "FlinkRunner [local], parallelism 2" in walls:
        flink = walls["FlinkRunner [local], parallelism 1"] / walls["FlinkRunner [local], parallelism 2"]
        print(f"speed-up of parallelism 2 over 1 (Flink, wall): {flink:.2f}x")


if __name__ == "__main__":
    main()
