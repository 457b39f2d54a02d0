"""One lake of the default demo day, made once per test session and shared by the analyst-facing
tests (Trino, the report): running the pipeline again per module would only cost time."""
from __future__ import annotations

from pathlib import Path

from pipeline.run import run
from tests.pipeline_runs import pipeline_args

_made: dict[int, tuple[Path, dict]] = {}


def demo_lake(world, tmp_path_factory) -> tuple[Path, dict]:
    """(lake root, run summary) for the session's ``world``."""
    if id(world) not in _made:
        lake = tmp_path_factory.mktemp("demo-lake")
        _made[id(world)] = lake, run(pipeline_args(world, lake))
    return _made[id(world)]
