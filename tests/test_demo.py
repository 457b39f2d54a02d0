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
    assert len(list((work / "lake/audio").rglob("*.wav"))) == 7
    report = work / "lake/_runs" / truth["date"] / "report.html"
    assert f"\nreport: {report}\n" in done.stdout and report.read_text().count("<figure><img") == 10
