"""How the end-to-end tests run the pipeline on a test world and read back the lake it wrote: the run's
arguments, its tables through DuckDB as Athena sees them, raw 8 kHz channels, file digests, and
summaries without what differs from run to run."""
from __future__ import annotations

import hashlib
import wave
from pathlib import Path

import duckdb
import numpy as np

from runners.local.seed import PREFIX_CTR, PREFIX_EVENTS, PREFIX_SDR

HIVE = "hive_partitioning=true, hive_types={'date': VARCHAR, 'voice_connector_id': VARCHAR}"


def pipeline_args(world, output: Path, kvs_url: str | None = None, *extra: str) -> list[str]:
    return [
        f"--date={world.config.date}",
        f"--ctr_prefix={world.s3_uri(PREFIX_CTR)}", f"--sdr_prefix={world.s3_uri(PREFIX_SDR)}",
        f"--events_prefix={world.s3_uri(PREFIX_EVENTS)}", f"--output={output}",
        f"--kvs_endpoint_url={kvs_url or world.kvs.url}", "--write_raw_channels",
        "--runner=FnApiRunner", *extra,
    ]


def without_run(summary: dict) -> dict:
    """A summary without what differs from run to run: its "run" part (wall time, CPU, paths), the
    CPU each stage took and the throttling met on the way."""
    counters = {k: v for k, v in summary["counters"].items()
                if not k.endswith((".cpu_ms", ".throttled_retries"))}
    return {**{k: v for k, v in summary.items() if k != "run"}, "counters": counters}


def file_digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def table(lake: Path, name: str) -> list[dict]:
    if not any((lake / name).rglob("*.parquet")):
        return []
    rel = duckdb.sql(f"SELECT * FROM read_parquet('{lake / name}/**/*.parquet', {HIVE})")
    return [dict(zip(rel.columns, row, strict=True)) for row in rel.fetchall()]


def raw_channels(path: Path) -> list[np.ndarray]:
    with wave.open(str(path), "rb") as w:
        assert (w.getframerate(), w.getsampwidth()) == (8000, 2)
        frames = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, w.getnchannels())
    return [frames[:, c].copy() for c in range(frames.shape[1])]
