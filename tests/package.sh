#!/usr/bin/env bash
# The Debian package on this machine's own server: builds freeradius-rust, installs it
# with dpkg -i, enables the module in the system's /etc/freeradius/3.0 (listeners on
# free loopback high ports, never 1812/1813), runs the system freeradius threaded as
# its own user freerad, exchanges auth and accounting with radclient, reads the
# session with the installed CLI, upgrades the package (data kept), purges it and
# restores the configuration. Needs root (dpkg); scripts/test.sh runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { echo "package test: FAILED: $*" >&2; [ -f "${log:-}" ] && tail -30 "$log" >&2; exit 1; }
# grep -q quits at the first match, and under pipefail the writer's SIGPIPE then
# fails the pipeline (a large man page did, in CI): read the whole input instead.
has() { grep "$@" >/dev/null; }
[ "$(id -u)" -eq 0 ] || fail "needs root (dpkg -i)"
if dpkg-query -W -f='${Status}' freeradius-rust 2>/dev/null | has 'ok installed'; then
  fail "freeradius-rust is installed on this machine already: not touching it"
fi
deb=$(bash scripts/package.sh | tail -1)
deb2=$(RLM_PACKAGE_VERSION=0.1.0+upgrade bash scripts/package.sh | tail -1)

etc=/etc/freeradius/3.0
work=$(mktemp -d)
log=$work/radius.log
tar -C /etc -cf "$work/etc.tar" freeradius
had_varlib=no; [ -e /var/lib/freeradius ] && had_varlib=yes
# Package scripts must not start the stock server (it would take 1812/1813).
policy=/usr/sbin/policy-rc.d
[ -e $policy ] && cp -p $policy "$work/policy-rc.d"
printf '#!/bin/sh\nexit 101\n' >$policy && chmod 755 $policy
server=
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
  dpkg --purge freeradius-rust >/dev/null 2>&1 || true
  rm -rf /etc/freeradius && tar -C /etc -xpf "$work/etc.tar"
  rm -f $policy; [ -e "$work/policy-rc.d" ] && cp -p "$work/policy-rc.d" $policy
  [ $had_varlib = no ] && rm -rf /var/lib/freeradius
  rm -rf "$work"
}
trap cleanup EXIT

dpkg -i "$deb" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; fail "dpkg -i"; }
for f in /usr/lib/freeradius/rlm_rust.so /usr/bin/rlm-rust /usr/share/freeradius/dictionary.rust \
  $etc/mods-available/rust $etc/sites-available/rust /usr/share/man/man1/rlm-rust.1.gz; do
  [ -e "$f" ] || fail "$f not installed"
done
[ ! -e $etc/mods-enabled/rust ] || fail "the module must not be enabled by the install"
[ "$(stat -c %U:%G:%a /var/lib/freeradius)" = freerad:freerad:750 ] || fail "/var/lib/freeradius: $(stat -c %U:%G:%a /var/lib/freeradius)"
[ "$(stat -c %U:%G:%a $etc/mods-available/rust)" = freerad:freerad:640 ] || fail "mods-available/rust: $(stat -c %U:%G:%a $etc/mods-available/rust)"
zcat /usr/share/man/man1/rlm-rust.1.gz | has 'rlm-rust nas add' || fail "the man page lacks the subcommands"
# The product only: no test doubles or bench tools.
if grep -qa 'routeros::double\|radius::double\|routeros-double' /usr/lib/freeradius/rlm_rust.so /usr/bin/rlm-rust; then
  fail "a test double is compiled into the product"
fi
dpkg -L freeradius-rust | has 'loadgen\|bench\|double' && fail "the package ships a bench or test tool"

free_ports() {
  python3 - "$@" <<'PY'
import socket
while True:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close()
    if p > 60000: continue
    try:
        for q in (p, p + 1):
            t = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); t.bind(("127.0.0.1", q)); t.close()
        m = socket.socket(); m.bind(("127.0.0.1", p + 2)); m.close()
        print(p); break
    except OSError:
        pass
PY
}
auth=$(free_ports); acct=$((auth + 1)); metrics=$((auth + 2))
# The operator's steps (the container image's too): the module and its example site,
# listeners on test ports.
sh docker/enable-rust-site.sh 127.0.0.1 "$auth"
sed -i "s|^#\tmetrics_listen = .*|\tmetrics_listen = 127.0.0.1:$metrics|" $etc/mods-available/rust
grep -q "metrics_listen = 127.0.0.1:$metrics" $etc/mods-available/rust || fail "could not set metrics_listen"
# A users entry naming one of the module's attributes: parsed only if the module
# loaded dictionary.rust by itself (nobody edited a dictionary).
printf 'pkguser Cleartext-Password := "pw", Rust-Capping-Traffic-Limit := "100"\n' >>$etc/mods-config/files/authorize
grep -q dictionary.rust $etc/dictionary && fail "the system dictionary was edited"

start() {
  freeradius -f -l stdout >>"$log" 2>&1 &
  server=$!
  for _ in $(seq 1 100); do
    grep -q 'Ready to process requests' "$log" 2>/dev/null && return 0
    kill -0 "$server" 2>/dev/null || fail "freeradius exited"
    sleep 0.2
  done
  fail "freeradius did not become ready"
}
stop() { kill "$server"; wait "$server" || true; server=; }
rad() { radclient -r 3 -t 3 "127.0.0.1:$1" "$2" testing123; }
acct_pkt() { echo "User-Name = pkguser, Acct-Status-Type = $1, Acct-Session-Id = pkg-1, NAS-IP-Address = 127.0.0.2, Acct-Output-Octets = $2, Acct-Session-Time = 60"; }

# The database an older version left (schema 15, before API-SSL verification), with an
# API-SSL NAS: migrated at the first start, its data kept, the NAS still working
# (unverified, with a warning). The NAS is on loopback: nothing listens there.
db=/var/lib/freeradius/rlm_rust.sqlite
for m in src/store/migrations/sqlite/00*.sql; do
  case $m in */0016_*) break ;; esac
  sqlite3 $db <"$m"
done
sqlite3 $db "PRAGMA journal_mode = WAL; PRAGMA user_version = 15;
  INSERT INTO nas (nas_ip, name, api_host, api_user, api_password, api_tls, created, updated)
  VALUES ('127.0.0.9', 'oldnas', '127.0.0.9', 'api', 'old-secret', 1, 0, 0);" >/dev/null || fail "could not seed an old database"
chown freerad:freerad $db && chmod 640 $db

freeradius -XC >"$work/check.log" 2>&1 || { cat "$work/check.log"; fail "freeradius -XC"; }
start
grep -q 'applied schema migration 16' "$log" || fail "the old database was not migrated"
grep -q 'applied schema migration 15' "$log" && fail "a migration the old database had ran again"
rlm-rust --db $db nas list | grep oldnas | has 'NOT VERIFIED' || fail "the old NAS after the migration: $(rlm-rust --db $db nas list)"
grep -q 'old-secret' "$log" && fail "an API password in the log"
[ "$(ps -o user= -p "$server" | tr -d ' ')" = freerad ] || fail "the server does not run as freerad"
echo 'User-Name = pkguser, User-Password = pw' | rad $auth auth | has 'Access-Accept' || fail "no Access-Accept"
acct_pkt Start 0 | rad $acct acct | has 'Accounting-Response' || fail "Start not answered"
acct_pkt Interim-Update 123456 | rad $acct acct | has 'Accounting-Response' || fail "Interim not answered"
[ "$(stat -c %U:%G:%a $db)" = freerad:freerad:640 ] || fail "$db: $(stat -c %U:%G:%a $db)"
rlm-rust --db $db --json sessions list --user pkguser | has 123456 || fail "the CLI does not show the session: $(rlm-rust --db $db sessions list)"
runuser -u freerad -- rlm-rust --db $db sessions list --user pkguser | has pkguser || fail "the CLI as freerad"
# The module's threads (group commit, metrics listener) work after the server dropped root.
python3 - "$metrics" <<'PY' || fail "no metrics from the module's listener thread"
import sys, urllib.request
body = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5).read().decode()
assert 'rlm_rust_accounting_requests_total{outcome="recorded"} 2' in body, body
PY
stop

# -XC names a database directory the server's user cannot write.
chown root:root /var/lib/freeradius && chmod 755 /var/lib/freeradius
if freeradius -XC >"$work/check.log" 2>&1; then fail "-XC passed an unwritable database directory"; fi
grep -q "option 'db'.*cannot create files in /var/lib/freeradius" "$work/check.log" || { cat "$work/check.log"; fail "-XC did not name the directory"; }
chown freerad:freerad /var/lib/freeradius && chmod 750 /var/lib/freeradius

# Upgrade: the data stays, the server starts on it again.
dpkg -i "$deb2" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; fail "upgrade"; }
[ "$(dpkg-query -W -f='${Version}' freeradius-rust)" = 0.1.0+upgrade ] || fail "not upgraded"
[ -L $etc/mods-enabled/rust ] || fail "the upgrade disabled the module"
start
acct_pkt Stop 200000 | rad $acct acct | has 'Accounting-Response' || fail "Stop after the upgrade not answered"
rlm-rust --db $db --json sessions list --closed --user pkguser | has 200000 ||
  fail "the session did not survive the upgrade: $(rlm-rust --db $db sessions list)"
stop

dpkg --purge freeradius-rust >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; fail "purge"; }
for f in /usr/lib/freeradius/rlm_rust.so /usr/bin/rlm-rust $etc/mods-available/rust $etc/mods-enabled/rust /usr/share/freeradius/dictionary.rust; do
  [ ! -e "$f" ] && [ ! -L "$f" ] || fail "$f left after purge"
done
[ -f $db ] || fail "the purge removed the accounting database"
grep -q 'is kept' "$work/dpkg.log" || fail "the purge did not say where the database is"
echo "package test: ok ($deb, upgraded to $deb2, purged)"
