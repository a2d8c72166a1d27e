#!/usr/bin/env bash
# Memory check: the stock freeradius (-X, one thread) loads the release module under
# valgrind memcheck; radclient drives logins and accounting through the capping,
# policy, service and state paths, the CLI changes states meanwhile, and the server
# is stopped cleanly (detach joins the module's threads). Prints valgrind's summary
# and fails when an error has a frame in rlm_rust.
#
#   scripts/valgrind.sh            (about 3 minutes)
#
# Output: target/valgrind/valgrind.log (the whole report), radius.log.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
command -v valgrind >/dev/null || { echo "valgrind.sh: installing valgrind" >&2; apt-get install -y -q valgrind >/dev/null; }
cargo build --release --quiet
out=target/valgrind
rm -rf "$out"
mkdir -p "$out"
auth=${AUTH_PORT:-28120}
acct=$((auth + 1))
export AUTH_PORT=$auth ACCT_PORT=$acct BACKGROUND_INTERVAL=1s BULK_DISCONNECT=no \
  DM_TIMEOUT=1s DM_RETRIES=0 \
  HOOKS=$'\t\tall = /bin/true'
cat >"$out/users.extra" <<'USERS'
vg1 Cleartext-Password := "pw"
	Mikrotik-Rate-Limit := "2M/2M"
vg2 Cleartext-Password := "pw"
USERS
raddb=$(RLM_RUST_LIB=$PWD/target/release/librlm_rust.so scripts/raddb.sh "$out")
db=$out/db/rlm_rust.sqlite
cli() { target/release/rlm-rust --db "$db" "$@" >/dev/null; }
valgrind --tool=memcheck --leak-check=full --error-limit=no --num-callers=30 --track-origins=yes \
  --log-file="$out/valgrind.log" \
  freeradius -X -d "$raddb" -l "$out/radius.log" >/dev/null 2>&1 &
server=$!
for _ in $(seq 1 600); do
  grep -q "Ready to process requests" "$out/radius.log" 2>/dev/null && break
  kill -0 "$server" 2>/dev/null || { echo "freeradius exited under valgrind" >&2; cat "$out/valgrind.log" >&2; exit 1; }
  sleep 0.5
done
rad() { radclient -q -r 2 -t 10 "127.0.0.1:$1" "$2" testing123 || true; }
cli nas add 127.0.0.2 --name vgnas --coa-port 39999
cli service add turbo --timeout 5 --rate 50M/50M
cli policy add plan --rate-down 8M --rate-up 4M --max-devices 3 --concurrent-connections 3 --daily-traffic 100
cli user policy vg2 plan
cli limits set vg1 --traffic-mb 1
for i in 1 2 3; do
  for u in vg1 vg2 nobody; do
    echo "User-Name = $u, User-Password = pw, NAS-IP-Address = 127.0.0.2, Calling-Station-Id = \"02:00:00:00:00:0$i\"" | rad "$auth" auth
    for status in Start Interim-Update Stop; do
      echo "User-Name = $u, Acct-Status-Type = $status, Acct-Session-Id = \"$u-$i\", NAS-IP-Address = 127.0.0.2, Framed-IP-Address = 100.64.0.$i, Acct-Output-Octets = $((i * 700000)), Acct-Session-Time = 30" | rad "$acct" acct
      [ "$status" = Start ] && { cli service activate "$u" turbo || true; cli user rate "$u" 3M/3M || true; }
    done
  done
  cli user block vg2; cli user unblock vg2
done
# Malformed input too: an empty User-Name, a huge Acct-Delay-Time, garbage bytes.
echo 'User-Name = "", Acct-Status-Type = Start, Acct-Session-Id = x' | rad "$acct" acct
echo 'User-Name = vg1, Acct-Status-Type = Interim-Update, Acct-Session-Id = vg1-9, Acct-Delay-Time = 4294967295' | rad "$acct" acct
head -c 300 /dev/urandom > "$out/garbage"
python3 - "$acct" "$out/garbage" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(open(sys.argv[2], "rb").read(), ("127.0.0.1", int(sys.argv[1])))
PY
sleep 8   # background jobs: presence, thresholds, NAS actions, hooks
kill -TERM "$server"
wait "$server" || true
echo "--- valgrind summary ($out/valgrind.log)"
grep -E "ERROR SUMMARY|definitely lost|indirectly lost|Invalid (read|write)|uninitialised" "$out/valgrind.log" | sort | uniq -c
# Errors with a frame in our module (the server's own and its libraries' are reported
# above but are not ours to fix).
python3 - "$out/valgrind.log" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
blocks = re.split(r"\n==\d+== \n", text)
ours = [b for b in blocks
        if re.search(r"(Invalid|uninitialised|Conditional jump|Mismatched|overlap)", b)
        and "rlm_rust" in b]
leaks = [b for b in blocks if "definitely lost" in b and "rlm_rust" in b and "are definitely lost" in b]
print(f"errors with an rlm_rust frame: {len(ours)}; definite leaks from rlm_rust: {len(leaks)}")
for b in (ours + leaks)[:5]:
    print(b)
sys.exit(1 if ours or leaks else 0)
PY
