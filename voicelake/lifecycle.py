"""The lake's lifecycle on the Hive layout: forgetting calls (erasure) and expiring old days.

``forget`` removes every row of the given calls from every table, in every date and partition, and
their WAVs.  Each partition that held one of them is written again with ``lake_files``' writer from
the rows of the other calls (the same row groups and files a run landing them would write); every
other partition is left alone, byte for byte.  The new files are staged and brought in by the run's
own commit (``lake_commit``: a plan, a ``_commits/`` marker, moves, deletes), so a forget killed
inside its commit is completed by the next run or forget on the lake.

Before anything is rewritten, a one-way digest of each id goes into the erasure ledger
(``layout.erasure_ledger``), never the id itself: every later run leaves those calls out, even while
KVS still holds their media.  Last, the runs' own files (``_runs/``) are searched for the ids'
bytes: a text file naming one has it replaced by ``[forgotten]``, any other such file is deleted, and
so is the scratch (``_work/``) of a run that did not commit.

``expire`` removes whole ``date=`` folders older than a cut-off from every table and ``audio/``.
No Beam here: both run in the driver, on a local lake or one in S3 (``voicelake.storage``).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import itertools
import json

import pyarrow.parquet as pq

from schemas import tables
from voicelake import lake_commit, lake_files, layout, storage

LEDGER_PREFIX = b"voicelake-erasure-v1:"  # fixed: the same id always gives the same digest
REDACTED = b"[forgotten]"
TEXT_SUFFIXES = (".json", ".sql", ".html", ".txt", ".csv", ".md", ".log")


class NotALake(ValueError):
    """The path holds no lake (no ``calls/`` folder)."""


def digest(call_id: str) -> str:
    """The ledger's one-way digest of a call id (hex sha256 of a fixed prefix and the id)."""
    return hashlib.sha256(LEDGER_PREFIX + call_id.encode()).hexdigest()


def is_forgotten(call_id: str | None, digests: frozenset[str] | set[str]) -> bool:
    return call_id is not None and digest(call_id) in digests


def read_ledger(root: str) -> frozenset[str]:
    """The digests of every call forgotten in the lake at ``root`` (none without a ledger)."""
    path = layout.erasure_ledger(root)
    if not storage.exists(path):
        return frozenset()
    return frozenset(line.strip() for line in storage.read_bytes(path).decode().splitlines() if line.strip())


def add_to_ledger(root: str, call_ids: list[str]) -> int:
    """Add the ids' digests to the ledger (sorted, once each); returns how many are new."""
    known = read_ledger(root)
    new = {digest(call_id) for call_id in call_ids} - known
    if new:
        storage.write_bytes(layout.erasure_ledger(root), "".join(f"{d}\n" for d in sorted(known | new)).encode())
    return len(new)


def parse_ids(text: str, source: str = "call ids") -> list[str]:
    """One id a line; blank lines and ``#`` comments are skipped; a line that is not an id is refused
    (ValueError naming its line number) before anything is done."""
    ids = []
    for n, line in enumerate(text.splitlines(), 1):
        value = line.split("#", 1)[0].strip()
        if not value:
            continue
        if not layout.SAFE_PART.match(value) or value in (".", ".."):
            raise ValueError(f"{source} line {n}: {value[:80]!r} is not a call id (letters, digits, . _ -)")
        ids.append(value)
    return list(dict.fromkeys(ids))


def check_id(value: str) -> str:
    if not layout.SAFE_PART.match(value) or value in (".", ".."):
        raise ValueError(f"{value[:80]!r} is not a call id (letters, digits, . _ -)")
    return value


def check_lake(root: str) -> str:
    """``root`` made absolute, if it holds a lake (a ``calls/`` folder); NotALake otherwise."""
    root = storage.absolute(root)
    calls = layout.join(root, "calls")
    found = storage.list_tree(calls)[:1] if storage.is_s3(root) else storage.exists(calls)
    if not found:
        raise NotALake(f"{root} is not a voicelake lake (no calls/ folder)")
    return root


# ---- forget --------------------------------------------------------------------------------------

@dataclasses.dataclass
class Forgotten:
    rows: dict[str, int]  # table -> rows removed
    rewritten: list[str]  # Parquet files written again (without the calls' rows)
    removed: list[str]  # Parquet files and WAVs removed
    wavs: list[str]  # the WAVs among them
    unmatched: list[str]  # ids with no row and no WAV in the lake
    new_digests: int  # digests the ledger did not hold yet
    redacted: list[str]  # run files the ids were taken out of
    deleted: list[str]  # run files and scratch deleted because they named an id


def _call_ids(path: str) -> list[str | None]:
    with storage.readable(path) as local:
        return pq.read_table(local, columns=["call_id"]).column("call_id").to_pylist()


def _affected_partitions(root: str, ids: set[str]):
    """(table, date, partition, its files, rows of the ids, the ids it held) of every partition
    holding a row of one of ``ids``; only the call_id column is read."""
    for table in tables.TABLES:
        by_partition: dict[tuple[str, str], list[str]] = {}
        for path in storage.list_paths(layout.table_files(root, table)):
            place = layout.partition_of(root, path)
            if place is not None:
                by_partition.setdefault((place.date, place.partition), []).append(path)
        for (date, partition), paths in sorted(by_partition.items()):
            hits = [c for path in sorted(paths) for c in _call_ids(path) if c in ids]
            if hits:
                yield table, date, partition, sorted(paths), len(hits), set(hits)


def _stage_partition(root: str, table: str, date: str, partition: str, paths: list[str],
                     ids: set[str]) -> list[str]:
    """Stage the partition's files without the ids' rows; returns the lake names staged (none when
    no row is left: the partition goes, as a run leaves a partition with nothing in it)."""
    parts = lake_files.kept_parts(table, paths, ids)
    first = next(parts, None)
    if first is None:
        return []
    names = []
    for n, data in enumerate(lake_files.parquet_files_of(table, (p for _, p in itertools.chain([first], parts)))):
        name = layout.table_file(root, table, date, partition, n)
        storage.write_bytes(layout.staged(root, name), data)
        names.append(name)
    return names


def forget(root: str, call_ids: list[str]) -> Forgotten:
    """Remove every row and WAV of ``call_ids`` from the lake at ``root`` and record their digests."""
    root = check_lake(root)
    call_ids = [check_id(c) for c in dict.fromkeys(call_ids)]
    lake_commit.recover(root)  # a commit left under way comes first, as for a run
    new_digests = add_to_ledger(root, call_ids)  # first: from now on no run lands them again
    ids = set(call_ids)
    rows: dict[str, int] = dict.fromkeys(tables.TABLES, 0)
    matched: set[str] = set()
    affected = list(_affected_partitions(root, ids))
    wavs = sorted(path for call_id in call_ids for source in (False, True)
                  for path in storage.list_paths(layout.wav_glob(root, call_id, source=source)))
    matched |= {layout.call_of_wav(path) for path in wavs}
    dates = sorted({date for _, date, _, _, _, _ in affected}
                   | {layout.partition_of(root, path).date for path in wavs})
    rewritten, removed = [], list(wavs)
    if dates:
        lake_commit.discard_scratch(root, dates)  # a dead run's staged files must not come in with ours
        for table, date, partition, paths, hits, held in affected:
            rows[table] += hits
            matched |= held
            staged = _stage_partition(root, table, date, partition, paths, ids)
            rewritten += staged
            removed += [path for path in paths if path not in staged]
        plan = {"dates": dates, "delete": sorted(removed)}
        storage.write_bytes(layout.commit_plan(root, dates),
                            (json.dumps(plan, indent=0, sort_keys=True) + "\n").encode())
        lake_commit.commit(root, dates)
        for path in removed:  # a partition left with nothing: its folders go (S3 has none)
            folder = path.rsplit("/", 1)[0]
            storage.remove_empty_folder(folder)
            storage.remove_empty_folder(folder.rsplit("/", 1)[0])
    redacted, deleted = _sweep_run_files(root, call_ids)
    return Forgotten(rows=rows, rewritten=sorted(rewritten), removed=sorted(removed), wavs=wavs,
                     unmatched=[c for c in call_ids if c not in matched], new_digests=new_digests,
                     redacted=redacted, deleted=deleted)


def _sweep_run_files(root: str, call_ids: list[str]) -> tuple[list[str], list[str]]:
    """Take the ids out of the runs' own files (summaries, partitions.sql, reports, progress): a
    text file has each replaced by ``[forgotten]``, any other file naming one is deleted; scratch
    (``_work/``) naming one is deleted (it is an uncommitted run's, which the next run discards)."""
    needles = [c.encode() for c in call_ids]
    redacted, deleted = [], []
    for folder in (layout.RUNS, layout.SCRATCH, layout.COMMITS):
        for path in storage.list_tree(layout.join(root, folder)):
            data = storage.read_bytes(path)
            if not any(n in data or n in path.encode() for n in needles):
                continue
            if folder == layout.RUNS and path.endswith(TEXT_SUFFIXES) \
                    and not any(n in path.encode() for n in needles):
                for n in needles:
                    data = data.replace(n, REDACTED)
                storage.write_bytes(path, data)
                redacted.append(path)
            else:
                storage.delete([path])
                deleted.append(path)
    return redacted, deleted


# ---- expire --------------------------------------------------------------------------------------

def expire(root: str, keep_days: int, today: dt.date) -> dict[str, list[str]]:
    """Remove every ``date=`` folder of every table and of ``audio/`` older than ``today`` minus
    ``keep_days``; returns folder -> the dates removed."""
    if keep_days < 0:
        raise ValueError(f"--keep-days must be 0 or more, not {keep_days}")
    root = check_lake(root)
    cutoff = (today - dt.timedelta(days=keep_days)).isoformat()
    removed: dict[str, list[str]] = {}
    for folder in (*tables.TABLES, layout.AUDIO):
        dates = sorted({place.date for path in storage.list_tree(layout.join(root, folder))
                        if (place := layout.partition_of(root, path)) is not None})
        old = [d for d in dates if _is_date(d) and d < cutoff]
        for date in old:
            _delete_folder(layout.date_dir(root, folder, date))
        removed[folder] = old
    return removed


def _delete_folder(folder: str) -> None:
    """Every file below ``folder`` and then its emptied folders (the table's own folder stays)."""
    paths = storage.list_tree(folder)
    storage.delete(paths)
    subfolders = {p.rsplit("/", n)[0] for p in paths for n in range(1, p[len(folder):].count("/") + 1)}
    for sub in sorted(subfolders | {folder}, key=len, reverse=True):
        storage.remove_empty_folder(sub)


def _is_date(value: str) -> bool:
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True
