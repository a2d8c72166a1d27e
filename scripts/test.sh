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
# And every end-to-end file (but the two-server one, which is on PostgreSQL anyway)
# again with the servers on PostgreSQL.
if [ $# -eq 0 ]; then
  RLM_TEST_BACKEND=postgres cargo test --lib --no-fail-fast -- --test-threads="${TEST_THREADS:-2}" store:: login_memory:: console::
  RLM_E2E_BACKEND=postgres cargo test --no-fail-fast --test e2e_sessions --test e2e_capping \
    --test e2e_policies --test e2e_policy_quotas --test e2e_states --test e2e_disconnect \
    --test e2e_modulation --test e2e_bad_input --test e2e_unique_id --test e2e_console -- --test-threads="${TEST_THREADS:-2}"
  # The Debian package, installed into this machine's own server and purged again.
  bash tests/package.sh
fi
