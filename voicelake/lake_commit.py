"""A run's commit: the one step that puts its staged files in the lake, and what it keeps.

The run's stages write every file under a staging name (``layout.staged``) and its last stage a
plan (``layout.commit_plan``): which files of the run's dates go.  Once the pipeline has succeeded,
``commit`` copies the plan to ``_commits/<label>.json`` (from then on the commit is under way),
moves every staged file to its lake name, deletes what the plan names, and removes the marker and
the run's scratch.  A run that dies before the marker leaves every day as it was; one that dies
after it is completed by the next run on the lake (``recover``), whatever that run's dates.
Moving and deleting are idempotent, so a commit completed twice is the same commit.

Rules of what a re-run keeps (``kept_failures``) are here too: they say what the failures table
tells an operator about the calls that keep an earlier run's landing.
"""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from voicelake import layout, storage

KEPT_NOTE = "; the call keeps the rows and WAVs an earlier run landed"
NOT_IN_RECORDS = "not_in_records"
MOVERS = 16  # parallel moves: on S3 each is a copy and a delete, a round trip or two


def kept_failures(rows: list[dict], kept: list[tuple[str, str]]) -> tuple[list[dict], list[str]]:
    """A partition's failure rows with the calls that keep an earlier landing marked (``kept``), and
    a row for each such call whose record this run did not read at all; with why each was kept."""
    kept_ids = {call_id for call_id, _ in kept}
    out, reasons = [], []
    for row in rows:
        if row.get("call_id") in kept_ids:
            row = {**row, "kept": True, "detail": row["detail"] + KEPT_NOTE}
            reasons.append(row["reason"])
        out.append(row)
    failed = {row.get("call_id") for row in rows}
    for call_id, source in kept:
        if call_id not in failed:
            out.append({"stage": "records", "reason": NOT_IN_RECORDS, "source": source, "call_id": call_id,
                        "detail": "no record of this call was read for its date" + KEPT_NOTE, "kept": True})
            reasons.append(NOT_IN_RECORDS)
    return out, reasons


def commit(root: str, dates: list[str]) -> int:
    """Commit the run of ``dates`` (its plan must be written); returns how many files came in."""
    plan = storage.read_bytes(layout.commit_plan(root, dates))
    storage.write_bytes(layout.commit_marker(root, dates), plan)
    return _complete(root, layout.commit_marker(root, dates), json.loads(plan))


def recover(root: str) -> list[str]:
    """Complete every commit a run left under way; returns the markers it completed."""
    markers = storage.list_paths(layout.commit_markers(root))
    for marker in markers:
        _complete(root, marker, json.loads(storage.read_bytes(marker)))
    return markers


def _complete(root: str, marker: str, plan: dict) -> int:
    moves = [(path, layout.unstaged(root, date, path)) for date in plan["dates"]
             for path in storage.list_tree(layout.staging_dir(root, date))]
    with ThreadPoolExecutor(MOVERS) as pool:
        list(pool.map(lambda move: storage.move(*move), moves))
    storage.delete(plan["delete"])
    storage.delete([marker])
    storage.remove_empty_folder(layout.join(root, layout.COMMITS))
    discard_scratch(root, plan["dates"])
    return len(moves)


def discard_scratch(root: str, dates: list[str]) -> None:
    """A run's scratch (channel files, row shards, staged files, its plan): what a run that did not
    commit leaves behind, and what a committed run no longer needs."""
    storage.delete([layout.commit_plan(root, dates)])
    for date in dates:
        storage.delete_tree(layout.scratch_date_dir(root, date))
