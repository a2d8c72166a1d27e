#!/usr/bin/env bash
# The benchmark: no-module baseline, rlm_rust, rlm_sql + rlm_sql_sqlite + sqlcounter and
# rlm_python3, side by side on this machine; then rlm_rust on a store of 1M sessions and
# 100k users, a long run for memory, and the month-end bulk disconnect bench when present.
# Each configuration is a raddb generated from the installed Debian config, started the
# same way (threaded freeradius -f, same max_servers) on free loopback high ports.
#
#   scripts/bench.sh                  full run (about 11 minutes)
#   scripts/bench.sh --quick          short runs, small scale store (under 3 minutes)
#   scripts/bench.sh --only sql,rust  only some parts: baseline rust sql python scale memory disconnect
#   scripts/bench.sh --help           every option (durations, window, users, scale sizes...)
#   scripts/bench.sh --before REV     also rlm_rust built from commit REV ("rust-before"),
#                                     side by side with this build on SQLite
#
# Writes target/bench/report.md (also printed) and target/bench/report.json.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
# The load generator and the disconnect bench carry the NAS doubles (feature
# "doubles"); the module measured is the product's, built last.
cargo build --release --quiet --features doubles --bin rlm-rust-loadgen --bin rlm-rust-bench-disconnect
cargo build --release --quiet --bin rlm-rust --lib
args=()
while [ $# -gt 0 ]; do
  if [ "$1" = "--before" ]; then
    rev=${2:?--before needs a commit}
    shift 2
    tree=target/bench-before/src
    rm -rf "$tree" && mkdir -p "$tree"
    git archive "$rev" | tar -x -C "$tree"
    echo "bench: building rlm_rust at $rev (target/bench-before)" >&2
    (cd "$tree" && CARGO_TARGET_DIR="$PWD/../target" cargo build --release --quiet --lib)
    export BENCH_BEFORE_LIB=$PWD/target/bench-before/target/release/librlm_rust.so
    mig=$tree/src/store/migrations
    [ -d "$mig/sqlite" ] && mig=$mig/sqlite
    export BENCH_BEFORE_MIGRATIONS=$PWD/$mig
    continue
  fi
  args+=("$1")
  shift
done
exec python3 scripts/bench.py "${args[@]}"
