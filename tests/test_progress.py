"""voicelake.progress: counters made while a pipeline is built report to a folder that the driver sums."""
from __future__ import annotations

import json
import pickle

from apache_beam.metrics import Metrics

from voicelake import progress


def test_a_progress_line_shows_what_the_workers_reported_and_a_dash_for_the_rest():
    counts = {"records.records": 1200, "records.connect_calls": 25, "records.chime_calls": 15,
              "fragments.ranges": 80}
    assert progress.line("2024-05-14", 40.7, counts) == (
        "voicelake run 2024-05-14 [0:00:40] 1200 records read, 40 calls planned, "
        "-/80 ranges fetched, - calls written")


def test_counters_made_while_building_carry_the_folder_to_the_workers(tmp_path):
    folder = str(tmp_path / "progress")
    with progress.recording(folder):
        records = progress.counted(Metrics.counter("voicelake.records", "records"))
    outside = progress.counted(Metrics.counter("voicelake.records", "records"))
    assert (records.name, records.folder, outside.folder) == ("records.records", folder, None)

    on_worker = pickle.loads(pickle.dumps(records))  # what a worker process unpickles
    on_worker.inc(3)
    on_worker.inc()
    progress.flush_local(folder)
    files = list((tmp_path / "progress").glob("*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text()) == {"records.records": 4}

    (tmp_path / "progress" / "other-worker.json").write_text('{"records.records": 6, "analyse.calls": 2}')
    assert progress.read(folder) == {"records.records": 10, "analyse.calls": 2}
    progress.finish_local(folder)
    outside.inc()  # no folder: a Beam counter only
    assert progress.read(folder) == {"records.records": 10, "analyse.calls": 2}


def test_the_reporter_prints_a_last_line_when_the_run_ends(tmp_path):
    folder = str(tmp_path)
    (tmp_path / "w1.json").write_text('{"records.records": 21, "records.connect_calls": 4, '
                                      '"records.chime_calls": 3, "analyse.calls": 7}')
    lines = []
    with progress.Reporter(folder, "2024-05-14", lines.append, interval_s=3600):
        pass
    assert lines == ["voicelake run 2024-05-14 [0:00:00] 21 records read, 7 calls planned, "
                     "-/- ranges fetched, 7 calls written"]
