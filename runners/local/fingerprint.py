"""What a lake holds, as one comparable value: how tests and benchmarks tell that two runs (on two
engines, or in two places) wrote the same lake."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from voicelake import layout


def lake_fingerprint(root: Path, columns: dict[str, list[str]] | None = None) -> dict[str, str]:
    """A digest of every file outside ``_runs/``, wherever the lake was written.

    A file's digest is of its bytes, except that a Parquet table is read and the lake's own location
    is taken out of ``calls.wav_path`` (the one value that names where the lake lives).

    ``columns`` (table -> column names) digests only the Parquet files of those tables, and only
    those columns of them: how a lake is compared with one written before columns were added."""
    import pyarrow.parquet as pq

    location = str(Path(root).resolve())
    out = {}
    for path in sorted(Path(root).rglob("*")):
        name = str(path.relative_to(root))
        if not path.is_file() or layout.is_run_file(name):
            continue
        if columns is not None and (path.suffix != ".parquet" or name.split("/")[0] not in columns):
            continue
        if path.suffix != ".parquet":
            out[name] = hashlib.sha256(path.read_bytes()).hexdigest()
            continue
        table = pq.read_table(path)
        schema = str(table.schema)
        if columns is not None:  # values and types only: descriptions may be reworded since
            table = table.select(columns[name.split("/")[0]])
            schema = ",".join(f"{f.name}:{f.type}:{f.nullable}" for f in table.schema)
        rows = [{k: (v.replace(location, "<lake>", 1) if k == "wav_path" and v else v)
                 for k, v in row.items()} for row in table.to_pylist()]
        out[name] = hashlib.sha256((schema + json.dumps(rows, sort_keys=True, default=str))
                                   .encode()).hexdigest()
    return out
