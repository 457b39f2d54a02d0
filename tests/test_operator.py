"""What an operator sees of `voicelake run`: help, errors that name the thing, warnings, progress, summary.

Each test runs the console command as an operator would (a subprocess, against the local S3 server
over HTTP) and checks the words printed, not only the exit status.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from runners import engines
from runners.local.seed import PREFIX_CTR, PREFIX_EVENTS, PREFIX_SDR
from schemas.tables import TABLES
from tests.conftest import ROOT

LOG_LINE = re.compile(r"^  \(log: (?P<log>/\S+\.log)\)$")


def voicelake(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=600)


def no_aws_env(**extra: str) -> dict[str, str]:
    """This environment without any AWS credentials, profile files or instance metadata."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {**env, "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true", **extra}


def world_args(world, output: Path, *extra: str) -> list[str]:
    return ["run", f"--date={world.config.date}", f"--ctr_prefix={world.s3_uri(PREFIX_CTR)}",
            f"--sdr_prefix={world.s3_uri(PREFIX_SDR)}", f"--events_prefix={world.s3_uri(PREFIX_EVENTS)}",
            f"--output={output}", f"--kvs_endpoint_url={world.kvs.url}", *extra]


def test_run_help_lists_every_table_the_required_options_and_an_example_without_importing_beam():
    code = ("import sys; from pipeline.cli import main; main(['run', '--help']); "
            "print('beam imported' if 'apache_beam' in sys.modules else 'beam not imported')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0 and done.stderr == ""  # no apitools warning, nothing
    out = done.stdout
    assert out.rstrip().endswith("beam not imported")
    assert "Parquet tables " + ", ".join(f"{t}/" for t in TABLES) + " and WAV under audio/" \
        in " ".join(out.split())
    assert "gaps/" in out
    assert "required:\n  --date (or --start_date/--end_date)\n  --output\n" \
           "  at least one of --ctr_prefix, --sdr_prefix, --events_prefix\n" in out
    assert "example:\n  voicelake run --date=2024-05-14 --ctr_prefix=s3://ctr-bucket/" in out
    assert "--require_records" in out and "--progress_interval" in out and "--log_file" in out


def refused(done: subprocess.CompletedProcess) -> str:
    """The one-line message of a refused run; its log holds the traceback."""
    assert done.returncode == 2, done.stderr
    message, log_line = done.stderr.splitlines()
    log = Path(LOG_LINE.match(log_line)["log"])
    assert "Traceback (most recent call last)" in log.read_text()
    log.unlink()
    return message


def test_a_date_in_another_format_names_the_option_and_the_format(tmp_path):
    done = voicelake("run", "--date=14/05/2024", f"--output={tmp_path}", f"--ctr_prefix={tmp_path}")
    assert refused(done) == \
        "voicelake run: --date=14/05/2024 is not a date: expected YYYY-MM-DD, a comma-separated list " \
        "of them, or FIRST..LAST ranges, e.g. --date=2024-05-01..2024-05-03,2024-05-07"
    done = voicelake("run", "--start_date=2024-05-14", "--end_date=2024-05-1", f"--output={tmp_path}",
                     f"--ctr_prefix={tmp_path}")
    assert refused(done) == \
        "voicelake run: --end_date=2024-05-1 is not a date: expected YYYY-MM-DD, e.g. --end_date=2024-05-14"


def test_missing_options_are_named(tmp_path):
    assert refused(voicelake("run", f"--output={tmp_path}", f"--ctr_prefix={tmp_path}")) == \
        "voicelake run: --date (or --start_date) is required, e.g. --date=2024-05-14"
    assert refused(voicelake("run", "--date=2024-05-14", f"--ctr_prefix={tmp_path}")) == \
        "voicelake run: --output is required: the lake's root, s3://bucket/prefix or a local path"
    assert refused(voicelake("run", "--date=2024-05-14", f"--output={tmp_path}")) == \
        "voicelake run: give at least one of --ctr_prefix, --sdr_prefix, --events_prefix"


def test_a_missing_bucket_is_named_in_one_line(s3_server, tmp_path):
    env = {**os.environ, **s3_server.environment()}
    done = voicelake("run", "--date=2024-05-14", "--ctr_prefix=s3://no-such-bucket/ctr/",
                     f"--output={tmp_path}", env=env)
    assert refused(done) == \
        "voicelake run: --ctr_prefix=s3://no-such-bucket/ctr/: bucket 'no-such-bucket' does not exist"
    done = voicelake("run", "--date=2024-05-14", f"--ctr_prefix={tmp_path}",
                     "--output=s3://no-lake-bucket/voicelake", env=env)
    assert refused(done) == \
        "voicelake run: --output=s3://no-lake-bucket/voicelake: bucket 'no-lake-bucket' does not exist"


def test_missing_credentials_are_said_in_one_line(tmp_path):
    done = voicelake("run", "--date=2024-05-14", "--sdr_prefix=s3://chime-records/",
                     f"--output={tmp_path}", env=no_aws_env())
    assert refused(done) == (
        "voicelake run: no AWS credentials to read --sdr_prefix=s3://chime-records/: set AWS_PROFILE, "
        "or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run with an instance role")


def test_an_empty_prefix_warns_and_says_so_in_the_summary(world, tmp_path):
    env = {**os.environ, **world.s3.environment()}
    empty = world.s3_uri("nothing-here/")
    done = voicelake("run", f"--date={world.config.date}", f"--ctr_prefix={empty}",
                     f"--output={tmp_path}", f"--kvs_endpoint_url={world.kvs.url}", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[0] == \
        f"voicelake run {world.config.date}: --ctr_prefix={empty} holds no objects"
    assert f"voicelake run {world.config.date}: no records were read for {world.config.date}" \
        in done.stderr.splitlines()
    assert f"  warning: --ctr_prefix={empty} holds no objects\n" in done.stdout
    summary = json.loads((tmp_path / "_runs" / world.config.date / "summary.json").read_text())
    assert summary["records"] == 0 and summary["records_by_source"] == {"ctr": 0, "sdr": 0, "event": 0}
    assert summary["warnings"] == [f"--ctr_prefix={empty} holds no objects",
                                   f"no records were read for {world.config.date}"]


def test_require_records_makes_an_empty_prefix_an_error(world, tmp_path):
    env = {**os.environ, **world.s3.environment()}
    empty = world.s3_uri("nothing-here/")
    done = voicelake("run", f"--date={world.config.date}", f"--ctr_prefix={empty}",
                     f"--output={tmp_path}", "--require_records", env=env)
    assert done.returncode == 3
    assert done.stderr.splitlines() == [
        f"voicelake run: --ctr_prefix={empty} holds no objects (--require_records)"]
    assert not (tmp_path / "_runs").exists()


def test_require_records_fails_a_run_that_reads_no_records_for_its_days(world, tmp_path):
    env = {**os.environ, **world.s3.environment()}
    done = voicelake("run", "--date=2023-01-02", f"--ctr_prefix={world.s3_uri(PREFIX_CTR)}",
                     f"--output={tmp_path}", f"--kvs_endpoint_url={world.kvs.url}",
                     "--require_records", env=env)
    assert done.returncode == 3
    summary_file = tmp_path / "_runs/2023-01-02/summary.json"
    assert done.stderr.splitlines()[-1] == (
        f"voicelake run: no records were read for 2023-01-02 (--require_records); the summary is "
        f"at {summary_file}")
    assert json.loads(summary_file.read_text())["records"] == 0


def test_a_failing_run_prints_the_cause_in_one_line_and_keeps_the_traceback(world, tmp_path):
    env = {**os.environ, **world.s3.environment()}
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the lake should be")
    log = tmp_path / "run.log"
    done = voicelake(*world_args(world, blocked, f"--log_file={log}"), env=env)
    assert done.returncode == 1
    first, second = done.stderr.splitlines()[-2:]
    # the innermost error, and the stage Beam names when a stage met it (here the driver meets it
    # first: it completes and clears what earlier runs left under the lake before Beam starts)
    assert re.fullmatch(r"voicelake run failed: NotADirectoryError: \[Errno 20\] Not a directory: "
                        rf"'{re.escape(str(blocked))}/[a-z_]+(/[\w.=-]+)*'( \[while running '[^']+'\])?",
                        first), first
    assert second == f"  the traceback and the workers' output are in {log}"
    assert len(done.stderr.splitlines()) <= 4
    assert "Traceback (most recent call last)" in log.read_text()


PROGRESS = re.compile(r"^voicelake run (?P<date>\S+) \[\d+:\d\d:\d\d\] (?P<records>\d+|-) records read, "
                      r"(?P<planned>\d+|-) calls planned, (?:\d+|-)/(?:\d+|-) ranges fetched, "
                      r"(?:\d+|-) calls written$")


def check_progress_and_summary(world, done, lake: Path, runs_on: str) -> None:
    assert done.returncode == 0, done.stderr
    summary = json.loads((lake / "_runs" / world.config.date / "summary.json").read_text())
    first, *lines = done.stderr.splitlines()
    assert first == f"voicelake run {world.config.date}: running on {runs_on}"
    progress = [PROGRESS.match(line) for line in lines]
    assert progress and all(progress), done.stderr  # the terminal gets progress lines, nothing else
    # the last line comes after the run: records and planned calls as Beam's metrics count them
    assert progress[-1]["records"] == str(summary["records"])
    assert progress[-1]["planned"] == str(len(world.truth.calls))
    connect = [c for c in world.truth.calls if c["source"] == "connect"]
    chime = [c for c in world.truth.calls if c["source"] == "chime"]
    # a CTR per Connect call and its re-delivered copy; an SDR per Chime call and the broken one;
    # a STARTED and an ENDED event per leg (stream) of each Chime call
    by_source = {"ctr": len(connect) + sum(1 for c in connect if c.get("redelivered")),
                 "sdr": len(chime) + sum(1 for b in world.truth.bad_records if b["source"] == "chime"),
                 "event": sum(2 * len(c["streams"]) for c in chime)}
    assert summary["records_by_source"] == by_source == {"ctr": 5, "sdr": 4, "event": 12}
    assert summary["records"] == sum(by_source.values())
    assert summary["partial_calls"] == sum(1 for c in world.truth.calls if c.get("gaps"))
    out = done.stdout.splitlines()
    assert out[0].startswith(f"voicelake run {world.config.date}: {len(world.truth.calls)} calls, 2 failures")
    assert out[1] == "  records read: 21 (5 ctr, 4 sdr, 12 event); partial calls: 1"
    assert f"  lake: {lake}" in out and f"  summary: {lake}/_runs/{world.config.date}/summary.json" in out
    assert f"  partitions: {lake}/_runs/{world.config.date}/partitions.sql (ALTER TABLE ... ADD " \
           "PARTITION for what it wrote)" in out
    assert summary["run"]["lake"] == str(lake) and summary["run"]["wall_seconds"] > 0
    log = Path(summary["run"]["log"])
    assert f"  log: {log}" in out and log.is_file()


def test_by_default_a_run_uses_a_worker_process_per_core_and_says_so(world, tmp_path):
    env = {**os.environ, **world.s3.environment()}
    done = voicelake(*world_args(world, tmp_path / "lake", "--progress_interval=1",
                                 f"--log_file={tmp_path / 'run.log'}"), env=env)
    cores = os.cpu_count()
    check_progress_and_summary(world, done, tmp_path / "lake",
                               f"FnApiRunner, {cores} worker processes (multi_processing)")
    summary = json.loads((tmp_path / "lake/_runs" / world.config.date / "summary.json").read_text())
    assert (summary["run"]["runner"], summary["run"]["running_mode"], summary["run"]["workers"]) == \
        ("FnApiRunner", "multi_processing", cores)
    assert f"CPU s on this machine (FnApiRunner, {cores} worker processes (multi_processing))" in done.stdout


def test_runner_flags_override_the_default(world, tmp_path):
    env = {**os.environ, **world.s3.environment()}
    done = voicelake(*world_args(world, tmp_path / "lake", "--progress_interval=1",
                                 "--direct_running_mode=in_memory",
                                 f"--log_file={tmp_path / 'run.log'}"), env=env)
    check_progress_and_summary(world, done, tmp_path / "lake", "FnApiRunner, in this process (in_memory)")


def test_progress_lines_on_prism(world, tmp_path):
    prism = engines.require_or_skip("prism")
    env = {**os.environ, **world.s3.environment()}
    done = voicelake(*world_args(world, tmp_path / "lake", "--progress_interval=1",
                                 "--runner=PrismRunner", f"--prism_location={prism}",
                                 f"--log_file={tmp_path / 'run.log'}"), env=env)
    check_progress_and_summary(world, done, tmp_path / "lake", "PrismRunner")


def test_git_ignores_the_demos_workdir():
    done = subprocess.run(["git", "check-ignore", "--verbose", "demo-work/lake/calls/x.parquet"],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0 and done.stdout.startswith(".gitignore:"), done.stdout + done.stderr
