"""``voicelake demo --workdir DIR``: the whole job on this machine, no AWS account needed.

Starts a real S3 API on loopback (moto) and the project's KVS emulator, seeds a day of Amazon Connect
and Chime Voice Connector calls (media in KVS, records in S3, ground truth in DIR/truth.json), runs
the pipeline on the engine asked for (default: Beam's FnApiRunner with worker processes), writes the
lake to DIR/lake, and prints the run summary and a DuckDB query over the result. Whatever the engine
needed running (job servers, clusters, SDK workers) is stopped before the demo ends.
"""
from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path

from runners.launch import ENGINES, JVM_ENGINES, engine_options
from runners.local.kvs_emulator import start_emulator
from runners.local.kvs_store import KvsStore
from runners.local.s3 import environment, local_s3
from runners.local.seed import PREFIX_CTR, PREFIX_EVENTS, PREFIX_SDR, WorldConfig, seed_world

# Workers that an engine starts before the job (a cluster's) cannot learn a port chosen at random later.
FIXED_PORTS = {"s3": 5000, "kvs": 5001}


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        prog="voicelake demo", description=__doc__.split("\n\n")[1],
        epilog="Other options are passed to the pipeline as Beam options, after the engine's, e.g. "
               "--direct_num_workers=2 or --runner=PortableRunner --job_endpoint=...")
    parser.add_argument("--workdir", required=True, help="folder for the KVS store, truth and lake "
                                                         "(emptied first)")
    parser.add_argument("--date", default=WorldConfig.date, help="the demo day (UTC)")
    parser.add_argument("--connect-calls", type=int, default=WorldConfig.connect_calls)
    parser.add_argument("--chime-calls", type=int, default=WorldConfig.chime_calls)
    parser.add_argument("--call-seconds", type=float, default=WorldConfig.call_seconds)
    parser.add_argument("--audio-dir", default=None,
                        help="use real two-leg recordings (*_caller.wav + *_agent.wav pairs, 8 kHz "
                             "mono) instead of the bundled speech clips")
    parser.add_argument("--engine", choices=ENGINES, default="fnapi",
                        help="where the job runs (see docs/engines.md); default fnapi")
    parser.add_argument("--sdk-workers", choices=["process", "external"], default="process",
                        help="flink-cluster: Python SDK workers started by each TaskManager (process) or "
                             "one worker pool per TaskManager (external)")
    parser.add_argument("--s3-port", type=int, default=None,
                        help=f"the local S3's port (default: {FIXED_PORTS['s3']} on JVM engines, whose workers "
                             f"must know it in advance; a free one otherwise)")
    parser.add_argument("--kvs-port", type=int, default=None,
                        help=f"the KVS emulator's port (default: {FIXED_PORTS['kvs']} on JVM engines, "
                             f"a free one otherwise)")
    parser.add_argument("--seed-only", action="store_true",
                        help="seed the world and show it, without running the pipeline")
    return parser.parse_known_args(argv)


def recording_pairs(audio_dir: str | None) -> tuple[tuple[str, str], ...]:
    if not audio_dir:
        return ()
    pairs = []
    for caller in sorted(Path(audio_dir).glob("*_caller.wav")):
        agent = caller.with_name(caller.name.replace("_caller.wav", "_agent.wav"))
        if agent.exists():
            pairs.append((str(caller), str(agent)))
    if not pairs:
        raise SystemExit(f"voicelake demo: no *_caller.wav/*_agent.wav pairs in {audio_dir}")
    return tuple(pairs)


def show_world(s3_client, bucket: str, truth) -> None:
    keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    print(f"seeded s3://{bucket}: {len(keys)} record objects")
    for key in keys:
        print(f"  {key}")
    for call in truth.calls:
        frags = "+".join(str(len(s["fragments"])) for s in call["streams"])
        seconds = call["channels"][0]["samples"] / 8000
        print(f"  {call['source']:<8}{call['call_id']}  {seconds:6.1f} s  fragments {frags}")


def query_lake(lake: Path) -> None:
    import duckdb

    con = duckdb.connect()
    hive = "hive_partitioning=true, hive_types={'date': VARCHAR, 'voice_connector_id': VARCHAR}"
    for table in ("calls", "phases", "failures"):
        if not any((lake / table).glob("**/*.parquet")):
            print(f"(no {table})")
            continue
        rel = f"read_parquet('{lake / table}/**/*.parquet', {hive})"
        if table == "calls":
            sql = (f"SELECT source, call_id, round(duration_ms / 1000.0, 1) AS seconds, agent_username, "
                   f"talk_ms_customer, talk_ms_agent, non_talk_ms, hold_ms, turns FROM {rel} "
                   f"ORDER BY source, call_id")
        elif table == "phases":  # where each contact spent its time, and the holds inside agent
            sql = (f"SELECT call_id, phase, start_ms, end_ms, boundary, talk_ms_customer, talk_ms_agent "
                   f"FROM {rel} WHERE source = 'connect' ORDER BY call_id, start_ms, phase")
        else:
            sql = f"SELECT \"date\", source, stage, reason, source_key FROM {rel} ORDER BY reason"
        print(f"\nDuckDB> {sql}")
        print(con.sql(sql))


def main(argv: list[str]) -> int:
    args, beam_args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    work = Path(args.workdir).resolve()
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    config = WorldConfig(date=args.date, connect_calls=args.connect_calls,
                         chime_calls=args.chime_calls, call_seconds=args.call_seconds,
                         recordings=recording_pairs(args.audio_dir))
    store = KvsStore(work / "kvs")
    fixed = args.engine in JVM_ENGINES
    s3_port = args.s3_port if args.s3_port is not None else FIXED_PORTS["s3"] if fixed else 0
    kvs_port = args.kvs_port if args.kvs_port is not None else FIXED_PORTS["kvs"] if fixed else 0
    with local_s3(port=s3_port) as s3, start_emulator(work / "kvs", port=kvs_port) as kvs, \
            environment(s3.environment()):
        print(f"local S3 at {s3.endpoint_url}, KVS emulator at {kvs.url}")
        client = s3.client()
        truth = seed_world(client, store, config, work / "truth.json")
        show_world(client, config.bucket, truth)
        if args.seed_only:
            return 0
        from pipeline.console import stderr_to
        from pipeline.run import print_summary, run

        bucket = f"s3://{config.bucket}/"
        print(f"\nrunning the pipeline on {args.engine} (worker logs: {work / 'pipeline.log'}) ...", flush=True)
        with engine_options(args.engine, work / "engine", sdk_workers=args.sdk_workers) as runner_args, \
                stderr_to(work / "pipeline.log"):
            summary = run([
                f"--date={config.date}", f"--ctr_prefix={bucket}{PREFIX_CTR}",
                f"--sdr_prefix={bucket}{PREFIX_SDR}", f"--events_prefix={bucket}{PREFIX_EVENTS}",
                f"--output={work / 'lake'}", f"--kvs_endpoint_url={kvs.url}",
                # WARN, not WARNING: the Java runners refuse Python's spelling, both SDKs take this one
                *runner_args, "--default_sdk_harness_log_level=WARN", *beam_args,
            ], progress=lambda line: print(line, flush=True), log_file=str(work / "pipeline.log"),
                engine=args.engine)
    print()
    print_summary(summary)
    query_lake(work / "lake")
    from pipeline.report import write_report

    report = write_report(str(work / "lake"), summary["dates"])
    print(f"\nlake: {work / 'lake'}   truth: {work / 'truth.json'}\nreport: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
