#!/usr/bin/env bash
# Fetch and build what Beam's other engines need into one cache directory; safe to re-run.
#
#   bash runners/fetch_engines.sh [prism] [flink] [spark] [trino]   # default: all four
#
# Cache: ${VOICELAKE_ENGINES:-$HOME/.cache/voicelake/engines}
#   bin/prism                      Prism, Beam's Go runner, built with `go install` (needs Go)
#   flink-1.19/lib/                Beam's Flink 1.19 runner and Flink itself: the cluster JVMs' classpath
#   flink-1.19/beam-runners-flink-1.19-job-server-<beam>.jar   the same, shaded into a runnable job server
#   spark-3.5/lib/, spark-3.5/beam-runners-spark-3-job-server-<beam>.jar   likewise for Spark 3.5
#   trino-server-<version>/        Trino, Athena engine v3's engine, for tests/test_trino.py:
#                                  the server tar.gz copied with Maven and unpacked, keeping only
#                                  the Hive connector (needs Java 24+ to run, e.g. Temurin 25)
#   logs/                          the tools' own output, for when something could not be made
# Maven resolves the Java runners with runners/pom.xml (needs mvn and Java 11+); a folder is reused while
# the pom it was made from is unchanged.
#
# Prints one line per engine: "have ..." or "missing ...: <reason>".
# Exit status: 1 when an engine that was asked for is not there afterwards, except when its tool (Go,
# Maven) is missing outside CI: such a machine skips that engine's tests, while CI=true must run them.
set -euo pipefail

# Prism must be the Beam release the pipeline is built with (setup.py's pin); tests/test_engines.py
# checks this line against the installed apache_beam. The Java runners' release is runners/pom.xml's.
BEAM_VERSION="2.77.0"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
POM="$HERE/pom.xml"
CACHE="${VOICELAKE_ENGINES:-$HOME/.cache/voicelake/engines}"
# Athena engine v3 is Trino; runners/engines.py names the same version.
TRINO_VERSION="476"
TRINO_ARTIFACT="io.trino:trino-server:$TRINO_VERSION:tar.gz"

in_ci() { [ "${CI:-}" = "true" ] || [ "${CI:-}" = "1" ]; }
report() { printf '%-8s %-6s %s\n' "$1" "$2" "$3"; }
# a missing build tool fails only under CI (see above)
tool_missing() { report missing "$1" "$2"; if in_ci; then return 1; fi; return 0; }

# A prism that answers -h and was built for this Beam release is reused as it is.
prism_ready() {
  [ -x "$CACHE/bin/prism" ] && "$CACHE/bin/prism" -h >/dev/null 2>&1 &&
    [ "$(cat "$CACHE/bin/prism.version" 2>/dev/null)" = "$BEAM_VERSION" ]
}

fetch_prism() {
  if prism_ready; then
    report have prism "$CACHE/bin/prism (Beam $BEAM_VERSION)"
    return 0
  fi
  if ! command -v go >/dev/null 2>&1; then
    tool_missing prism "Go is not installed; Prism is built from source with Go (1.26+, or 1.21+ fetching its toolchain)"
    return
  fi
  mkdir -p "$CACHE/bin" "$CACHE/logs"
  # go install writes the binary straight into GOBIN; the module and build caches are Go's own.
  if GOBIN="$CACHE/bin" go install "github.com/apache/beam/sdks/v2/go/cmd/prism@v$BEAM_VERSION" \
       >"$CACHE/logs/prism.log" 2>&1 && "$CACHE/bin/prism" -h >/dev/null 2>&1; then
    echo "$BEAM_VERSION" >"$CACHE/bin/prism.version"
    report have prism "$CACHE/bin/prism (Beam $BEAM_VERSION, built with $(go env GOVERSION))"
  else
    report missing prism "go install of Prism v$BEAM_VERSION failed (log: $CACHE/logs/prism.log)"
    return 1
  fi
}

pom_property() { sed -n "s:.*<$1>\(.*\)</$1>.*:\1:p" "$POM" | head -1; }

# fetch_java ENGINE FOLDER JAR: Maven resolves the engine's profile of runners/pom.xml into
# $CACHE/FOLDER/lib and shades it into $CACHE/FOLDER/JAR, in a temporary folder renamed when complete.
fetch_java() {
  local engine="$1" folder="$2" jar="$3" home stamp log tmp
  home="$CACHE/$folder"
  stamp="$(sha256sum "$POM" | cut -c1-16)"
  log="$CACHE/logs/$engine.log"
  if [ -s "$home/$jar" ] && [ "$(cat "$home/pom.sha" 2>/dev/null)" = "$stamp" ]; then
    report have "$engine" "$home/$jar (+ lib/, $(ls "$home/lib" | wc -l) jars)"
    return 0
  fi
  if ! command -v mvn >/dev/null 2>&1; then
    tool_missing "$engine" "Maven (mvn) is not installed; it resolves runners/pom.xml -P $engine"
    return
  fi
  mkdir -p "$CACHE/logs"
  tmp="$CACHE/.$folder.partial"
  rm -rf "$tmp"
  # -U: re-ask the repositories instead of trusting Maven's cached "not found" from an earlier run
  if mvn -B -U -f "$POM" -P "$engine" -Dengines.build="$tmp" package >"$log" 2>&1 && [ -s "$tmp/$jar" ]; then
    rm -rf "$tmp/target" "$home"
    echo "$stamp" >"$tmp/pom.sha"
    mv "$tmp" "$home"
    report have "$engine" "$home/$jar (+ lib/, $(ls "$home/lib" | wc -l) jars)"
  elif grep -q -e "Could not find artifact" -e "was not found in" "$log"; then
    report missing "$engine" "a dependency of runners/pom.xml -P $engine is not served by the Maven repositories configured here (log: $log)"
    return 1
  else
    report missing "$engine" "Maven could not build runners/pom.xml -P $engine (log: $log)"
    return 1
  fi
}

# Trino's server is one 820 MB tar.gz. It is copied with a throw-away local repository, so the
# archive is not kept twice (once in ~/.m2), unpacked, and cut down to the one connector the tests
# use (the other plugins are ~700 MB). A server directory with its .complete mark is reused as it is.
fetch_trino() {
  local home="$CACHE/trino-server-$TRINO_VERSION" tmp="$CACHE/downloads" log="$CACHE/logs/trino.log"
  if [ -f "$home/.complete" ]; then
    report have trino "$home"
    return 0
  fi
  if ! command -v mvn >/dev/null 2>&1; then
    report missing trino "Maven (mvn) is not installed; it copies $TRINO_ARTIFACT"
    if in_ci; then return 1; fi
    return 0
  fi
  mkdir -p "$tmp" "$CACHE/logs"
  rm -rf "$home" "$tmp/trino-server-$TRINO_VERSION"
  if mvn -B -q dependency:copy -Dartifact="$TRINO_ARTIFACT" -DoutputDirectory="$tmp" \
       -Dmaven.repo.local="$tmp/m2" >"$log" 2>&1 \
     && tar -xzf "$tmp/trino-server-$TRINO_VERSION.tar.gz" -C "$tmp" >>"$log" 2>&1; then
    # Plugins share jars as hard links, so deleting the others leaves the Hive plugin whole.
    find "$tmp/trino-server-$TRINO_VERSION/plugin" -mindepth 1 -maxdepth 1 ! -name hive -exec rm -rf {} +
    mv "$tmp/trino-server-$TRINO_VERSION" "$home"
    touch "$home/.complete"
    rm -rf "$tmp"
    report have trino "$home"
  else
    rm -rf "$tmp"
    report missing trino "Maven could not copy $TRINO_ARTIFACT (log: $log)"
    if in_ci; then return 1; fi
  fi
}

main() {
  local engines=("$@") status=0 beam
  [ ${#engines[@]} -gt 0 ] || engines=(prism flink spark trino)
  beam="$(pom_property beam.version)"
  echo "engine cache: $CACHE"
  for engine in "${engines[@]}"; do
    case "$engine" in
      prism) fetch_prism || status=1 ;;
      flink) fetch_java flink flink-1.19 "beam-runners-flink-$(pom_property flink.minor)-job-server-$beam.jar" || status=1 ;;
      spark) fetch_java spark spark-3.5 "beam-runners-spark-3-job-server-$beam.jar" || status=1 ;;
      trino) fetch_trino || status=1 ;;
      *) echo "unknown engine '$engine' (expected prism, flink, spark or trino)" >&2; return 2 ;;
    esac
  done
  return "$status"
}

main "$@"
