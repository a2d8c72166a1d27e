#!/usr/bin/env bash
# Regenerates docs/screenshots/*.png: the console's browser test (tests/e2e_console.rs)
# saves each screen there as it goes, from a real freeradius, real RouterOS API
# doubles and headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh >/dev/null
cargo build --quiet
RLM_SCREENSHOTS=1 cargo test --quiet --test e2e_console
ls -l docs/screenshots
