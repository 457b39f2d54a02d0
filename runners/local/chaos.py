"""A hostile night: a seeded day served by a KVS that throttles, fails, resets and cuts bodies,
with some calls already past retention; the pipeline runs twice into one lake and the result is
checked against the seeder's truth.

Used by ``benchmarks/chaos.py`` (a full-size night, printed) and ``tests/test_chaos.py`` (a small
one, asserted).  Never imported by the production path.
"""
from __future__ import annotations

import hashlib
import wave
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from runners.local.kvs_emulator import Faults, start_emulator
from runners.local.kvs_store import KvsStore
from runners.local.seed import PREFIX_CTR, PREFIX_EVENTS, PREFIX_SDR, RETENTION_HOURS, WorldConfig, seed_world
from voicelake import layout

# the rates of issue "Nothing lost, nothing wrong": per request, in-band errors per fragment
HOSTILE = dict(throttle_probability=0.3, error_500_probability=0.05, reset_probability=0.1,
               truncate_probability=0.1, block_cut_probability=0.3, missing_fragment_probability=0.05)


@dataclass
class ChaosReport:
    seeded: int
    expired: int
    in_calls: int = 0
    failures_by_reason: dict = field(default_factory=dict)
    kept_in_calls: int = 0  # calls in retention that landed in calls
    expired_as_outside_retention: int = 0
    duplicates: int = 0
    wrong_pcm: int = 0  # calls in calls whose 8 kHz channels differ from the seeded audio
    lost: int = 0  # calls in neither table
    identical_reruns: bool = False

    @property
    def whole(self) -> bool:
        """What the pipeline promises of a hostile night."""
        return (self.kept_in_calls == self.seeded - self.expired
                and self.expired_as_outside_retention == self.expired
                and self.duplicates == self.lost == self.wrong_pcm == 0 and self.identical_reruns)

    def lines(self) -> list[str]:
        return [f"calls seeded {self.seeded}: {self.seeded - self.expired} in retention, "
                f"{self.expired} past it",
                f"in calls {self.in_calls} (of those in retention: {self.kept_in_calls}); in failures "
                f"{sum(self.failures_by_reason.values())} {self.failures_by_reason} (past retention "
                f"as outside_retention: {self.expired_as_outside_retention})",
                f"duplicates {self.duplicates}, lost {self.lost}, wrong 8 kHz PCM {self.wrong_pcm}, "
                f"two runs byte-identical: {'yes' if self.identical_reruns else 'NO'}"]


def expiring_clock(calls: list[dict], expired: int, pad_ms: int = 60_000, *,
                   partly: bool = False) -> tuple[int, int]:
    """(an emulator clock, how many calls it expires): the ``expired`` earliest calls (windows padded
    by ``pad_ms``) or, where those overlap later calls, the fewest more, fall before the retention
    start; every later call is inside it.  ``partly``: the retention start falls in the middle of
    the last expired call, so its first half is gone and its second half still listed."""
    ordered = sorted(calls, key=lambda c: c["start_ms"])
    for k in range(expired, len(ordered)):
        last_gone = max(c["end_ms"] for c in ordered[:k]) + pad_ms
        first_kept = ordered[k]["start_ms"] - pad_ms
        if last_gone < first_kept:
            cut = ((ordered[k - 1]["start_ms"] + ordered[k - 1]["end_ms"]) // 2 if partly
                   else (last_gone + first_kept) // 2)
            return cut + RETENTION_HOURS * 3_600_000, k
    raise ValueError("the seeded calls overlap wherever retention could split them: reseed")


def lake_digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file() and not layout.is_run_file(str(p.relative_to(root)))}


def channel_digests(wav_path: Path) -> list[str]:
    with wave.open(str(wav_path), "rb") as w:
        frames = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, w.getnchannels())
    return [hashlib.sha256(frames[:, c].astype("<i2").tobytes()).hexdigest() for c in range(frames.shape[1])]


def read_table(lake: Path, name: str) -> list[dict]:
    import pyarrow.parquet as pq

    rows = []
    for path in sorted(lake.glob(layout.table_glob(name))):
        rows += pq.read_table(path).to_pylist()
    return rows


def hostile_night(work: Path, s3, run, *, connect_calls: int, chime_calls: int, call_seconds: float,
                  expired: int, seed: int = 1, extra_args: tuple[str, ...] = (),
                  partly: bool = False) -> ChaosReport:
    """Seed, serve with every fault on, run the pipeline (``run(argv)``) twice, check the lake."""
    config = WorldConfig(connect_calls=connect_calls, chime_calls=chime_calls,
                         call_seconds=call_seconds, bad_records=False, dropout_fragment=None,
                         bucket=f"chaos-{seed}", seed=seed)
    truth = seed_world(s3.client(), KvsStore(work / "kvs"), config, work / "truth.json")
    now, expired = expiring_clock(truth.calls, expired, partly=partly)
    gone = {c["call_id"] for c in sorted(truth.calls, key=lambda c: c["start_ms"])[:expired]}
    bucket, lake = f"s3://{config.bucket}/", work / "lake"
    argv = [f"--date={config.date}", f"--ctr_prefix={bucket}{PREFIX_CTR}",
            f"--sdr_prefix={bucket}{PREFIX_SDR}", f"--events_prefix={bucket}{PREFIX_EVENTS}",
            f"--output={lake}", "--write_raw_channels", *extra_args]
    digests = []
    for attempt in range(2):
        faults = Faults(seed=seed * 10 + attempt, **HOSTILE)  # the second night meets other faults
        with start_emulator(work / "kvs", faults=faults, now_ms=now) as kvs:
            run([*argv, f"--kvs_endpoint_url={kvs.url}"])
        digests.append(lake_digests(lake))
    calls, failures = read_table(lake, "calls"), read_table(lake, "failures")
    report = ChaosReport(seeded=len(truth.calls), expired=len(gone), in_calls=len(calls),
                         failures_by_reason=dict(sorted(Counter(
                             f["reason"] for f in failures if f["call_id"]).items())),
                         identical_reruns=digests[0] == digests[1])
    landed = Counter([c["call_id"] for c in calls] + [f["call_id"] for f in failures if f["call_id"]])
    report.duplicates = sum(n - 1 for n in landed.values() if n > 1)
    report.lost = sum(1 for c in truth.calls if c["call_id"] not in landed)
    reasons = {f["call_id"]: f["reason"] for f in failures if f["call_id"]}
    report.expired_as_outside_retention = sum(reasons.get(c) == "outside_retention" for c in gone)
    landed_calls = {c["call_id"] for c in calls}
    report.kept_in_calls = sum(c["call_id"] in landed_calls for c in truth.calls if c["call_id"] not in gone)
    for call in truth.calls:
        if call["call_id"] not in landed_calls:
            continue
        wav = lake / layout.wav_relpath(call["date"], call["partition_id"], call["call_id"], source=True)
        if channel_digests(wav) != [c["sha256"] for c in call["channels"]]:
            report.wrong_pcm += 1
    return report
