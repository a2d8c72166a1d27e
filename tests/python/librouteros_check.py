"""Drive a RouterOS API server with the independent Python client `librouteros`.

Used by tests/routeros_python.rs against our server double. Prints one JSON
object with what the client saw; exits 3 if librouteros is missing.
"""

import argparse
import json
import sys

try:
    import librouteros
    from librouteros.exceptions import TrapError
    from librouteros.login import plain, token
    from librouteros.query import Key
except ImportError as exc:  # the Rust test checks for this before running us
    print(f"librouteros not importable: {exc}", file=sys.stderr)
    sys.exit(3)


def rows(path):
    return sorted((dict(r) for r in path), key=lambda r: r[".id"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--login", choices=["plain", "token"], default="plain")
    ap.add_argument("--remove-ppp-user", required=True)
    args = ap.parse_args()
    method = plain if args.login == "plain" else token

    out = {}
    try:
        librouteros.connect(
            "127.0.0.1", args.user, args.password + "-wrong",
            port=args.port, timeout=5, login_method=method,
        )
        out["wrong_password"] = "accepted"
    except TrapError as exc:
        out["wrong_password"] = "trap: " + str(exc)

    api = librouteros.connect(
        "127.0.0.1", args.user, args.password,
        port=args.port, timeout=5, login_method=method,
    )
    ppp = api.path("ppp", "active")
    hotspot = api.path("ip", "hotspot", "active")
    out["ppp_before"] = rows(ppp)
    out["hotspot_before"] = rows(hotspot)

    # Query with .proplist and ?=name=value, as librouteros builds them.
    sel = list(ppp.select(Key(".id"), Key("name")).where(Key("name") == args.remove_ppp_user))
    out["selected"] = [dict(r) for r in sel]
    ppp.remove(*[r[".id"] for r in sel])

    # Several ids in one remove (librouteros joins them with commas).
    hs_ids = [r[".id"] for r in out["hotspot_before"]]
    hotspot.remove(*hs_ids)

    try:
        ppp.remove("*DEAD")
        out["stale_remove"] = "accepted"
    except TrapError as exc:
        out["stale_remove"] = "trap: " + str(exc)

    out["ppp_after"] = rows(ppp)
    out["hotspot_after"] = rows(hotspot)
    api.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
