"""`voicelake demo --workdir DIR` (the README's first command) runs the whole job on the local world."""
from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT


def test_demo_seeds_runs_and_shows_the_lake(tmp_path):
    work = tmp_path / "demo"
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", "demo", "--workdir", str(work)],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    truth = json.loads((work / "truth.json").read_text())
    summary = json.loads((work / "lake/_runs" / truth["date"] / "summary.json").read_text())
    assert summary["calls"] == len(truth["calls"]) == 7
    assert summary["failed"] == len(truth["bad_records"]) == 2
    assert f"voicelake run {truth['date']}: 7 calls, 2 failures" in done.stdout
    assert "DuckDB> SELECT" in done.stdout
    assert len(list((work / "lake/audio").rglob("*.wav"))) == 2 * 7  # each call's ML WAV and its source .8k.wav
    report = work / "lake/_runs" / truth["date"] / "report.html"
    assert f"\nreport: {report}\n" in done.stdout and report.read_text().count("<figure><img") == 11
    assert chime_partitions(work) == CHIME_GOLDEN["digests"]["silero"]


# The demo's Chime calls as the pipeline wrote them before call phases (tests/golden, from that
# version): a Chime call is one phase, so phases leave every value it had.
CHIME_GOLDEN = json.loads((ROOT / "tests/golden/chime_demo_lake.json").read_text())


def chime_partitions(work) -> dict[str, str]:
    from runners.local.fingerprint import lake_fingerprint

    truth = json.loads((work / "truth.json").read_text())
    connectors = {c["partition_id"] for c in truth["calls"] if c["source"] == "chime"}
    return {name: digest for name, digest in lake_fingerprint(work / "lake", CHIME_GOLDEN["columns"]).items()
            if any(f"/voice_connector_id={vc}/" in name for vc in connectors)}


def test_vad_energy_writes_every_column_the_lake_had_before_the_neural_vad(tmp_path):
    """--vad energy is today's level gate, value for value: every column of the demo's Chime calls
    that existed before the neural VAD became the default is as it was then (tests/golden, written
    by that version of the pipeline; Connect contacts have had phases since), every column they had
    before phases is as it was then, and the neural VAD's column is null."""
    import pyarrow.parquet as pq

    from runners.local.fingerprint import lake_fingerprint

    work = tmp_path / "demo"
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", "demo", "--workdir", str(work),
                           "--vad=energy"], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    golden = json.loads((ROOT / "tests/golden/energy_v1_demo_lake.json").read_text())
    chime = set(chime_partitions(work))
    energy_v1 = {name: digest for name, digest in golden["digests"].items() if name in chime}
    assert energy_v1 and lake_fingerprint(work / "lake", golden["columns"]).items() >= energy_v1.items()
    assert chime_partitions(work) == CHIME_GOLDEN["digests"]["energy"]
    for table in ("calls", "channels"):
        for path in (work / "lake" / table).rglob("*.parquet"):
            assert set(pq.read_table(path, columns=["non_speech_ms"]).column(0).to_pylist()) == {None}
