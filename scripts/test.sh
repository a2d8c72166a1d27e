#!/usr/bin/env bash
# Runs every test: unit tests, the CLI tests, and the end-to-end tests that start the
# real freeradius with the module and talk to it with radclient and protocol doubles.
# Installs what is missing first (Debian packages, the matching freeradius headers,
# Python test peers).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
# The end-to-end tests load target/debug/librlm_rust.so into the server.
cargo build --quiet --all-targets
cargo test --no-fail-fast -- --test-threads="${TEST_THREADS:-2}" "$@"
# The store's suite again, on PostgreSQL (a cluster of its own, gone when it ends).
# And the end-to-end files that are about storage, with the servers on PostgreSQL.
if [ $# -eq 0 ]; then
  RLM_TEST_BACKEND=postgres cargo test --lib --no-fail-fast -- --test-threads="${TEST_THREADS:-2}" store:: login_memory::
  RLM_E2E_BACKEND=postgres cargo test --no-fail-fast --test e2e_sessions --test e2e_capping \
    --test e2e_policies --test e2e_policy_quotas -- --test-threads="${TEST_THREADS:-2}"
fi
