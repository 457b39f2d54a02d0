#!/usr/bin/env bash
# Fetch what Beam's other engines need into one cache directory; safe to re-run.
#
#   bash runners/fetch_engines.sh [prism] [flink] [spark] [trino]   # default: all four
#
# Cache: ${VOICELAKE_ENGINES:-$HOME/.cache/voicelake/engines}
#   bin/prism                        Prism, Beam's Go runner, built with `go install` (needs Go)
#   jars/beam-runners-*-job-server-* Flink and Spark job servers, copied with Maven (needs mvn, Java 11+)
#   trino-server-<version>/          Trino, Athena engine v3's engine, for tests/test_trino.py:
#                                    the server tar.gz copied with Maven and unpacked, keeping only
#                                    the Hive connector (needs Java 24+ to run, e.g. Temurin 25)
#   logs/                            the tools' own output, for when something could not be fetched
#
# Prints one line per engine: "have ..." or "missing ...: <reason>".
# Exit status: 1 when Prism was asked for and is not there afterwards, except when Go is missing
# outside CI (a machine without Go skips the Prism tests; CI=true must run them); the same for
# Trino when Maven is missing or cannot copy it under CI=true. The job-server jars
# are reported but never fatal: Maven repositories that mirror only part of Central do not serve them.
set -euo pipefail

# Prism and the job servers must be the Beam release the pipeline is built with (setup.py's pin);
# tests/test_engines.py checks this line against the installed apache_beam.
BEAM_VERSION="2.77.0"
CACHE="${VOICELAKE_ENGINES:-$HOME/.cache/voicelake/engines}"
FLINK_ARTIFACT="org.apache.beam:beam-runners-flink-2.2-job-server:$BEAM_VERSION"
SPARK_ARTIFACT="org.apache.beam:beam-runners-spark-3-job-server:$BEAM_VERSION"
# Athena engine v3 is Trino; runners/engines.py names the same version.
TRINO_VERSION="476"
TRINO_ARTIFACT="io.trino:trino-server:$TRINO_VERSION:tar.gz"

in_ci() { [ "${CI:-}" = "true" ] || [ "${CI:-}" = "1" ]; }
report() { printf '%-8s %-6s %s\n' "$1" "$2" "$3"; }

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
    report missing prism "Go is not installed; Prism is built from source with Go (1.26+, or 1.21+ fetching its toolchain)"
    if in_ci; then return 1; fi
    return 0
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

# fetch_jar ENGINE GROUP:ARTIFACT:VERSION
fetch_jar() {
  local engine="$1" coords="$2" artifact jar log
  artifact="${coords#*:}"; artifact="${artifact%%:*}"
  jar="$CACHE/jars/$artifact-$BEAM_VERSION.jar"
  log="$CACHE/logs/$engine.log"
  if [ -s "$jar" ]; then
    report have "$engine" "$jar"
    return 0
  fi
  if ! command -v mvn >/dev/null 2>&1; then
    report missing "$engine" "Maven (mvn) is not installed; it copies $coords"
    return 0
  fi
  mkdir -p "$CACHE/jars" "$CACHE/logs"
  # -U: re-ask the repositories instead of trusting Maven's cached "not found" from an earlier run
  if mvn -B -q -U dependency:copy -Dartifact="$coords" -DoutputDirectory="$CACHE/jars" >"$log" 2>&1 \
       && [ -s "$jar" ]; then
    report have "$engine" "$jar"
  elif grep -q -e "Could not find artifact" -e "was not found in" "$log"; then
    report missing "$engine" "$coords is not served by the Maven repositories configured here (log: $log)"
  else
    report missing "$engine" "Maven could not copy $coords (log: $log)"
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
  local engines=("$@") status=0
  [ ${#engines[@]} -gt 0 ] || engines=(prism flink spark trino)
  echo "engine cache: $CACHE"
  for engine in "${engines[@]}"; do
    case "$engine" in
      prism) fetch_prism || status=1 ;;
      flink) fetch_jar flink "$FLINK_ARTIFACT" ;;
      spark) fetch_jar spark "$SPARK_ARTIFACT" ;;
      trino) fetch_trino || status=1 ;;
      *) echo "unknown engine '$engine' (expected prism, flink, spark or trino)" >&2; return 2 ;;
    esac
  done
  return "$status"
}

main "$@"
