#!/usr/bin/env bash
# Starts a throw-away PostgreSQL cluster for the tests and benches, and stops it
# when its standard input closes (the test process exiting, even by kill -9):
#   scripts/pg-cluster.sh [--temporary] DIR [PORT]
#       prints one line, the cluster's connection string (Unix socket in DIR, TCP on
#       127.0.0.1:PORT, a free port by default), then waits. A cluster already in DIR
#       is started again (a test restarting "the database server"). --temporary
#       removes DIR once the cluster has stopped (a test process's own cluster:
#       each holds hundreds of MiB, and CI runs start dozens).
# initdb refuses root, so as root the cluster runs as the unprivileged `nobody`.
set -euo pipefail
temporary=
if [ "${1:-}" = --temporary ]; then temporary=1; shift; fi
dir=$1
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$bindir/initdb" ] || { echo "pg-cluster: PostgreSQL is not installed (scripts/deps.sh)" >&2; exit 1; }
mkdir -p "$dir"
run=()
if [ "$(id -u)" -eq 0 ]; then
  chown nobody "$dir"
  run=(setpriv --reuid=nobody --regid=nogroup --clear-groups --)
fi
port=${2:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
if [ ! -d "$dir/data" ]; then
  "${run[@]}" "$bindir/initdb" -D "$dir/data" -U postgres -A trust --locale=C -E UTF8 >/dev/null
fi
# Durable commits as in production (fsync on); a small shared_buffers suits 2 cores.
"${run[@]}" "$bindir/postgres" -D "$dir/data" -k "$dir" -h 127.0.0.1 -p "$port" \
  -c max_connections=300 -c shared_buffers=64MB -c log_min_messages=warning \
  -c min_wal_size=32MB -c max_wal_size=128MB \
  >"$dir/postgres.log" 2>&1 &
pid=$!
# Ready means accepting connections: the socket appears while the server is still
# "starting up" and refuses logins (a loaded CI machine showed that window).
ready=
for _ in $(seq 300); do
  if "$bindir/pg_isready" -q -h "$dir" -p "$port"; then ready=1; break; fi
  kill -0 $pid 2>/dev/null || { cat "$dir/postgres.log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$ready" ] || { echo "pg-cluster: not accepting connections after 30 s" >&2; cat "$dir/postgres.log" >&2; exit 1; }
echo "host=127.0.0.1 port=$port user=postgres dbname=postgres"
# Stop (fast shutdown) once whoever started us is gone.
cat >/dev/null || true
kill -INT $pid 2>/dev/null || true
wait $pid 2>/dev/null || true
if [ -n "$temporary" ]; then rm -rf "$dir"; fi
