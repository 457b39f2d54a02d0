"""What `voicelake run` sets up for the machine it runs on, before Beam starts."""
import os
import platform

import pytest

from pipeline import run


@pytest.fixture
def environ(monkeypatch):
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    return os.environ


def test_the_run_and_its_workers_get_two_malloc_arenas(environ):
    limited = run.limit_malloc_arenas()
    assert environ["MALLOC_ARENA_MAX"] == "2"  # inherited by every worker process it starts
    if platform.libc_ver()[0] == "glibc":
        assert limited  # and this process was told through mallopt


def test_an_operators_own_arena_setting_wins(environ, monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    run.limit_malloc_arenas()
    assert environ["MALLOC_ARENA_MAX"] == "4"
