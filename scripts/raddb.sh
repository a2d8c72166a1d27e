#!/usr/bin/env bash
# Writes a self-contained raddb for rlm_rust into DIR, derived from the installed
# Debian config (/etc/freeradius/3.0) so stock modules and policies are the real ones.
#
#   scripts/raddb.sh DIR
#
# Environment (all optional):
#   RLM_RUST_LIB      the built module (default: target/release/librlm_rust.so)
#   AUTH_PORT         authentication port on 127.0.0.1 (default 18120)
#   ACCT_PORT         accounting port (default AUTH_PORT + 1)
#   LISTEN_ADDR       listen address (default 127.0.0.1)
#   SECRET            shared secret of the 127.0.0.0/8 client (default testing123)
#   DB                SQLite file (default DIR/db/rlm_rust.sqlite) or PostgreSQL
#                     connection string
#   TIMEZONE          module timezone (default local)
#   SYNCHRONOUS       full | normal (default full)
#   STALE_AFTER       module stale_after (default 3h)
#   BACKGROUND_INTERVAL  module background_interval (default 10s)
#   MAX_SERVERS       thread pool size (default 32, as Debian)
#   CAPPING           lines added inside the module's capping { } section
#   HOOKS             lines added inside the module's hooks { } section
#   POST_AUTH_UNLANG  unlang added to post-auth right after "rust"
#   PREACCT_UNLANG    unlang added to preacct right after "rust"
#   DISCONNECT_PRIOR_MONTH, DM_TIMEOUT, DM_RETRIES, DISCONNECT_BATCH,
#   BULK_DISCONNECT, BULK_DISCONNECT_DELAY, MAX_SESSION_RATE, QUEUE_LEASE,
#   METRICS_LISTEN, METRICS_TOKEN
#                     the module's disconnect options (default: the module's defaults)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:?usage: raddb.sh DIR}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
stock=/etc/freeradius/3.0
lib=${RLM_RUST_LIB:-$here/target/release/librlm_rust.so}
auth_port=${AUTH_PORT:-18120}
acct_port=${ACCT_PORT:-$((auth_port + 1))}
listen_addr=${LISTEN_ADDR:-127.0.0.1}
secret=${SECRET:-testing123}
db=${DB:-$dir/db/rlm_rust.sqlite}
[ -f "$lib" ] || { echo "raddb.sh: module not built: $lib" >&2; exit 1; }

rm -rf "$dir/raddb"
cp -a "$stock" "$dir/raddb"
r=$dir/raddb
mkdir -p "$dir/lib" "$dir/log" "$dir/run"
case "$db" in
  postgres://*|postgresql://*|*=*) ;;
  *) mkdir -p "$(dirname "$db")" ;;
esac
ln -sf "$lib" "$dir/lib/rlm_rust.so"

# Paths into DIR; run as the invoking user (no switch to freerad).
sed -i \
  -e "s|^raddbdir = .*|raddbdir = $r|" \
  -e "s|^logdir = .*|logdir = $dir/log|" \
  -e "s|^run_dir = .*|run_dir = $dir/run|" \
  -e "s|^libdir = .*|libdir = $dir/lib:/usr/lib/freeradius|" \
  -e "s|^\(\s*\)user = freerad|\1#user = freerad|" \
  -e "s|^\(\s*\)group = freerad|\1#group = freerad|" \
  -e "s|^\(\s*\)max_servers = .*|\1max_servers = ${MAX_SERVERS:-32}|" \
  "$r/radiusd.conf"

# Only the modules the rust server uses (eap & co need certificates and files we don't use).
rm -f "$r"/mods-enabled/* "$r"/sites-enabled/*
for m in always attr_filter chap expr files pap preprocess; do
  ln -s ../mods-available/$m "$r/mods-enabled/$m"
done
cp "$here/freeradius-config/mods-available/rust" "$r/mods-available/rust"
sed -i \
  -e "s|^\(\s*\)db = .*|\1db = \"$db\"|" \
  -e "s|^\(\s*\)timezone = .*|\1timezone = \"${TIMEZONE:-local}\"|" \
  -e "s|^\(\s*\)synchronous = .*|\1synchronous = ${SYNCHRONOUS:-full}|" \
  -e "s|^\(\s*\)stale_after = .*|\1stale_after = ${STALE_AFTER:-3h}|" \
  -e "s|^#\(\s*\)background_interval = .*|\1background_interval = ${BACKGROUND_INTERVAL:-10s}|" \
  "$r/mods-available/rust"
if [ -n "${CAPPING:-}" ]; then
  awk '{ print } /^\tcapping \{/ { print ENVIRON["CAPPING"] }' "$r/mods-available/rust" > "$r/rust.tmp"
  mv "$r/rust.tmp" "$r/mods-available/rust"
fi
if [ -n "${HOOKS:-}" ]; then
  awk '{ print } /^\thooks \{/ { print ENVIRON["HOOKS"] }' "$r/mods-available/rust" > "$r/rust.tmp"
  mv "$r/rust.tmp" "$r/mods-available/rust"
fi
for opt in disconnect_prior_month dm_timeout dm_retries disconnect_batch \
           bulk_disconnect bulk_disconnect_delay max_session_rate queue_lease \
           metrics_listen metrics_token; do
  var=$(echo "$opt" | tr a-z A-Z)
  if [ -n "${!var:-}" ]; then
    sed -i -e "s|^#\(\s*\)$opt = .*|\1$opt = ${!var}|" "$r/mods-available/rust"
  fi
done
ln -s ../mods-available/rust "$r/mods-enabled/rust"
cp "$here/freeradius-config/sites-available/rust" "$r/sites-available/rust"
# unlang after "rust" in one section: after_rust SECTION TEXT
after_rust() {
  SECTION=$1 TEXT=$2 awk '{ print } $0 == ENVIRON["SECTION"] " {" { p = 1 }
    p && /^\trust$/ { print ENVIRON["TEXT"]; p = 0 }' "$r/sites-available/rust" > "$r/site.tmp"
  mv "$r/site.tmp" "$r/sites-available/rust"
}
if [ -n "${POST_AUTH_UNLANG:-}" ]; then after_rust post-auth "$POST_AUTH_UNLANG"; fi
if [ -n "${PREACCT_UNLANG:-}" ]; then after_rust preacct "$PREACCT_UNLANG"; fi
ln -s ../sites-available/rust "$r/sites-enabled/rust"
cat > "$r/sites-enabled/rust-listen" <<LISTEN
listen {
	type = auth
	ipaddr = $listen_addr
	port = $auth_port
	virtual_server = rust
}
listen {
	type = acct
	ipaddr = $listen_addr
	port = $acct_port
	virtual_server = rust
}
LISTEN

cp "$here/freeradius-config/dictionary.rust" "$r/dictionary.rust"
echo "\$INCLUDE $r/dictionary.rust" >> "$r/dictionary"

cat > "$r/clients.conf" <<CLIENTS
client loopback {
	ipaddr = 127.0.0.0/8
	secret = $secret
	shortname = loopback
}
CLIENTS

cat > "$r/mods-config/files/authorize" <<USERS
# Demo user for radclient: User-Name = demo, User-Password = demo
demo	Cleartext-Password := "demo"
USERS
[ -f "$dir/users.extra" ] && cat "$dir/users.extra" >> "$r/mods-config/files/authorize"
echo "$r"
