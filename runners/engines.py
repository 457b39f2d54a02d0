"""Where Beam's other engines live on this machine, which job servers the SDK may talk to, and what a
test does when an engine is missing.

``bash runners/fetch_engines.sh`` fills one cache directory: Prism built with Go, for Flink and Spark
the runner's classpath (``lib/``, for the standalone clusters' JVMs) plus a runnable job-server jar
shaded from it with Maven (``runners/pom.xml``), and Trino's server for the Athena check. These helpers
find what it left there. An engine test calls ``require_or_skip``: a developer machine without the
tool skips the test with one line naming what is missing, while CI (``CI=true``, where ``.ci/run`` runs
the fetch script first) fails instead, so
a silently skipped engine can never pass as a green build.
"""
from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

FETCH_SCRIPT = Path(__file__).with_name("fetch_engines.sh")  # in a checkout, not in the wheel
POM = Path(__file__).with_name("pom.xml")

# The newest Beam release whose Java runners *and* their job-service dependency the Maven repositories
# serve (2.70.0's runners are served, its beam-runners-java-job-service is not). runners/pom.xml pins it.
RUNNER_RELEASE = "2.62.0"
# SDK release series -> job-server releases measured to write the same lake as the SDK's own runners
# (the portability API between them is stable; this pair ran the whole demo byte-identically).
MEASURED_SKEW = {"2.77": (RUNNER_RELEASE,)}


@dataclass(frozen=True)
class JavaEngine:
    name: str
    folder: str  # under the cache
    jar_name: str  # the name Beam publishes its shaded job server under
    job_server_main: str
    versions: str  # what a user's cluster must run

    def home(self) -> Path:
        return cache_dir() / self.folder

    def jar(self) -> Path:
        return self.home() / self.jar_name

    def lib(self) -> Path:
        return self.home() / "lib"


FLINK = JavaEngine("flink", "flink-1.19", f"beam-runners-flink-1.19-job-server-{RUNNER_RELEASE}.jar",
                   "org.apache.beam.runners.flink.FlinkJobServerDriver", "Flink 1.19.0")
SPARK = JavaEngine("spark", "spark-3.5", f"beam-runners-spark-3-job-server-{RUNNER_RELEASE}.jar",
                   "org.apache.beam.runners.spark.SparkJobServerDriver", "Spark 3.5.1 (Scala 2.12)")
JAVA_ENGINES = {e.name: e for e in (FLINK, SPARK)}

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
    """The shaded Flink or Spark job-server jar the fetch script made, or None."""
    path = JAVA_ENGINES[engine].jar()
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


def allowed_job_servers(sdk: str) -> tuple[str, ...]:
    series = ".".join(sdk.split(".")[:2])
    return (sdk, *MEASURED_SKEW.get(series, ()))


def check_job_server_jar(path: str | Path, sdk: str | None = None) -> str | None:
    """One line when a job-server jar is not a release this SDK was measured against, else None.

    The job server and the Python SDK talk the portability protocol; a pair nobody ran together may
    fail late and obscurely (unknown URNs, coder errors), so it is refused up front. Allowed: the SDK's
    own release, and the skew measured to write the same lake (``MEASURED_SKEW``). The release is read
    from the name Beam publishes the jar under, e.g. ``beam-runners-flink-1.19-job-server-2.62.0.jar``
    (1.19 is the Flink version, 2.62.0 Beam's).
    """
    sdk = sdk or sdk_version()
    name = Path(path).name
    match = _JAR_NAME.match(name)
    if not match:
        return (f"{name}: not a Beam job-server jar name (beam-runners-<engine>-job-server-<version>.jar), "
                f"so its Beam release cannot be checked against the SDK's {sdk}")
    allowed = allowed_job_servers(sdk)
    if match["version"] not in allowed:
        return (f"{name} is Beam {match['version']}, but the Python SDK {sdk} was only measured against "
                f"job servers {' and '.join(allowed)}: use one of those (bash runners/fetch_engines.sh)")
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
        engine = JAVA_ENGINES[tool.removesuffix("-job-server")]
        return (f"{tool} is missing: no {engine.jar()}; "
                f"`bash runners/fetch_engines.sh {engine.name}` makes it with Maven")
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
