#!/usr/bin/env bash
# Long runs of the randomised tests (tests/randomised.rs): many more cases than CI's
# default 256 per property, in release mode.
#   scripts/fuzz.sh                 100,000 cases per property
#   CASES=1000000 scripts/fuzz.sh   more
# A failure is shrunk and written to tests/randomised.proptest-regressions (commit it);
# add the input to tests/corpus/ as well (see its README).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
PROPTEST_CASES=${CASES:-100000} cargo test --release --test randomised -- --test-threads="${TEST_THREADS:-2}"
