#!/usr/bin/env bash
# The main job: installs what is missing, builds the module, writes a self-contained raddb
# under target/run (module enabled on target/run/db/rlm_rust.sqlite, demo user, a
# 127.0.0.0/8 client with secret testing123) and starts freeRADIUS in the foreground.
#
#   scripts/run.sh             debug mode (-X): every module decision is printed
#   scripts/run.sh --threaded  threaded, as in production, logging to the terminal
#
# Then, from another terminal:
#   echo 'User-Name=demo,User-Password=demo' | radclient 127.0.0.1:18120 auth testing123
#   echo 'User-Name=demo,Acct-Status-Type=Start,Acct-Session-Id=s1' | radclient 127.0.0.1:18121 acct testing123
#   target/release/rlm-rust --db target/run/db/rlm_rust.sqlite sessions list
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cargo build --release --quiet
raddb=$(RLM_RUST_LIB=$PWD/target/release/librlm_rust.so scripts/raddb.sh target/run)
echo "rlm_rust: auth 127.0.0.1:${AUTH_PORT:-18120}, acct 127.0.0.1:$(( ${AUTH_PORT:-18120} + 1 )), secret testing123, user demo/demo"
echo "rlm_rust: database target/run/db/rlm_rust.sqlite (inspect with target/release/rlm-rust --db target/run/db/rlm_rust.sqlite sessions list)"
if [ "${1:-}" = "--threaded" ]; then
  exec freeradius -f -l stdout -d "$raddb"
fi
exec freeradius -X -d "$raddb"
