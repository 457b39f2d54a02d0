"""Where Beam's other engines live on this machine, and what a test does when one is missing.

``bash runners/fetch_engines.sh`` fills one cache directory (Prism built with Go, the Flink and Spark
job-server jars copied with Maven, Trino's server for the Athena check); these helpers find what it
left there. An engine test calls
``require_or_skip``: a developer machine without the tool skips the test with one line naming what
is missing, while CI (``CI=true``, where ``.ci/run`` runs the fetch script first) fails instead, so
a silently skipped engine can never pass as a green build.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

FETCH_SCRIPT = Path(__file__).with_name("fetch_engines.sh")  # in a checkout, not in the wheel
JOB_SERVER_ARTIFACTS = {
    "flink": "beam-runners-flink-2.2-job-server",  # Flink 2.2: what Beam 2.77's FlinkRunner defaults to
    "spark": "beam-runners-spark-3-job-server",
}
TRINO_VERSION = "476"  # the fetch script's TRINO_VERSION; Trino 476 runs on Java 24 or later
TRINO_MIN_JAVA = 24
_JAR_NAME = re.compile(r"^beam-runners-[a-z0-9.]+(?:-[a-z0-9.]+)*-job-server-(?P<version>\d[^/]*)\.jar$")


def cache_dir() -> Path:
    return Path(os.environ.get("VOICELAKE_ENGINES") or Path.home() / ".cache" / "voicelake" / "engines")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1")


def sdk_version() -> str:
    import apache_beam

    return apache_beam.__version__


def prism_path() -> Path | None:
    """The Prism binary the fetch script built, or None."""
    path = cache_dir() / "bin" / "prism"
    return path if path.is_file() and os.access(path, os.X_OK) else None


def job_server_jar(engine: str) -> Path | None:
    """The fetched Flink or Spark job-server jar for this SDK's release, or None."""
    path = cache_dir() / "jars" / f"{JOB_SERVER_ARTIFACTS[engine]}-{sdk_version()}.jar"
    return path if path.is_file() else None


def trino_home() -> Path | None:
    """The unpacked Trino server the fetch script left (marked complete), or None."""
    path = cache_dir() / f"trino-server-{TRINO_VERSION}"
    return path if (path / ".complete").is_file() else None


def java_for_trino() -> Path | None:
    """A java of release 24 or later: $TRINO_JAVA_HOME, $JAVA_HOME, or a JDK under /usr/lib/jvm."""
    homes = [os.environ.get("TRINO_JAVA_HOME"), os.environ.get("JAVA_HOME")]
    homes += sorted(str(p) for p in Path("/usr/lib/jvm").glob("*") if p.is_dir() and not p.is_symlink())
    for home in filter(None, homes):
        release = Path(home) / "release"
        match = re.search(r'^JAVA_VERSION="(\d+)', release.read_text(), re.M) if release.is_file() else None
        java = Path(home) / "bin" / "java"
        if match and int(match[1]) >= TRINO_MIN_JAVA and os.access(java, os.X_OK):
            return java
    return None


def check_job_server_jar(path: str | Path, sdk: str | None = None) -> str | None:
    """One line when a job-server jar is not of the SDK's Beam release, else None.

    The job server and the Python SDK talk the portability protocol of one release; a mismatched
    pair fails late and obscurely (unknown URNs, coder errors), so it is refused up front. The
    release is read from the name Beam publishes the jar under, e.g.
    ``beam-runners-flink-2.2-job-server-2.77.0.jar`` (2.2 is the Flink version, 2.77.0 Beam's).
    """
    sdk = sdk or sdk_version()
    name = Path(path).name
    match = _JAR_NAME.match(name)
    if not match:
        return (f"{name}: not a Beam job-server jar name (beam-runners-<engine>-job-server-<version>.jar), "
                f"so its Beam release cannot be checked against the SDK's {sdk}")
    if match["version"] != sdk:
        return f"{name} is Beam {match['version']} but the Python SDK is Beam {sdk}: use the {sdk} job server"
    return None


def locate(tool: str) -> Path | None:
    """prism, flink-job-server, spark-job-server from the cache; anything else from PATH."""
    if tool == "prism":
        return prism_path()
    if tool == "trino":
        return trino_home()
    if tool == "java-for-trino":
        return java_for_trino()
    if tool.endswith("-job-server"):
        return job_server_jar(tool.removesuffix("-job-server"))
    found = shutil.which(tool)
    return Path(found) if found else None


def missing_reason(tool: str) -> str:
    """One line: what is missing and the command that provides it."""
    if tool == "prism":
        how = ("`bash runners/fetch_engines.sh prism` builds it with Go" if shutil.which("go")
               else "Go is not installed, and `bash runners/fetch_engines.sh prism` builds it with Go")
        return f"prism is missing: no {cache_dir() / 'bin' / 'prism'}; {how}"
    if tool == "trino":
        return (f"trino is missing: no {cache_dir()}/trino-server-{TRINO_VERSION}; "
                f"`bash runners/fetch_engines.sh trino` copies it with Maven")
    if tool == "java-for-trino":
        return (f"Trino {TRINO_VERSION} needs Java {TRINO_MIN_JAVA}+: none in $TRINO_JAVA_HOME, "
                f"$JAVA_HOME or /usr/lib/jvm")
    if tool.endswith("-job-server"):
        engine = tool.removesuffix("-job-server")
        return (f"{tool} is missing: no {cache_dir() / 'jars'}/{JOB_SERVER_ARTIFACTS[engine]}-{sdk_version()}.jar; "
                f"`bash runners/fetch_engines.sh {engine}` copies it with Maven")
    return f"{tool} is missing: not found on PATH"


def require_or_skip(tool: str) -> Path:
    """The tool's path; without it, skip the calling test, or fail it under CI."""
    import pytest  # only tests call this; the wheel does not depend on pytest

    path = locate(tool)
    if path is None:
        reason = missing_reason(tool)
        if in_ci():
            pytest.fail(f"{reason} (CI=true: engine tests must run, not skip)", pytrace=False)
        pytest.skip(reason)
    return path
