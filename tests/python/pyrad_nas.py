#!/usr/bin/env python3
"""A NAS double for RFC 5176 tests, built on pyrad (an implementation independent
of ours): it listens for Disconnect-/CoA-Requests on 127.0.0.x and answers
according to the User-Name prefix:

  ack-*        ACK (with a Message-Authenticator)
  nak-N-*      NAK with Error-Cause N (no Message-Authenticator)
  nak-none-*   NAK without Error-Cause
  silent-*     no answer
  drop1-*      no answer to the first transmission, ACK to retransmissions
  forged-*     first a reply with a broken authenticator, then the real ACK
  wrongcode-*  a CoA-ACK whatever the request

A request that fails pyrad's authenticator checks is dropped, like a real NAS
does, unless --reply-on-bad-auth (then it is answered, signed with our secret).

stdout: first {"port": N}, then one JSON object per received request.
Exits when stdin closes.
"""

import argparse
import json
import os
import socket
import sys
import threading

try:
    from pyrad import dictionary, packet
except ImportError:
    print(json.dumps({"error": "pyrad not installed"}), flush=True)
    sys.exit(3)


def emit(obj):
    sys.stdout.write(json.dumps(obj, default=str) + "\n")
    sys.stdout.flush()


def attributes(pkt):
    out = {}
    for key in pkt.keys():
        name = key if isinstance(key, str) else str(key)
        try:
            values = pkt[key]
        except Exception as e:  # undecodable value: report, don't die
            values = ["<%s>" % e]
        out[name] = [v.hex() if isinstance(v, bytes) else v for v in values]
        # Tagged attributes (RFC 2868) also as "Name:tag", as pyrad splits them.
        attr = pkt.dict.attributes.get(name) if isinstance(name, str) else None
        if attr is not None and attr.has_tag:
            for tag in range(1, 32):
                try:
                    tagged = pkt["%s:%d" % (name, tag)]
                except KeyError:
                    continue
                out["%s:%d" % (name, tag)] = [
                    v.hex() if isinstance(v, bytes) else v for v in tagged]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--secret", required=True)
    ap.add_argument("--reply-on-bad-auth", action="store_true")
    ap.add_argument("--alt-bind", help="second address, for replies from the wrong source")
    args = ap.parse_args()

    here = os.path.dirname(os.path.abspath(__file__))
    d = dictionary.Dictionary(os.path.join(here, "pyrad_dictionary"))
    secret = args.secret.encode()

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((args.bind, args.port))
    sock.settimeout(0.1)
    alt = None
    if args.alt_bind:
        alt = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        alt.bind((args.alt_bind, 0))
    emit({"port": sock.getsockname()[1]})

    done = threading.Event()

    def watch_stdin():
        sys.stdin.read()
        done.set()

    threading.Thread(target=watch_stdin, daemon=True).start()

    seen = {}  # (addr, id, authenticator) -> transmissions seen
    while not done.is_set():
        try:
            raw, addr = sock.recvfrom(4096)
        except socket.timeout:
            continue
        try:
            pkt = packet.CoAPacket(packet=raw, secret=secret, dict=d)
        except Exception as e:
            emit({"error": "decode: %s" % e, "raw": raw.hex()})
            continue
        auth_ok = pkt.VerifyCoARequest()
        ma_present = bool(pkt.message_authenticator)
        ma_ok = pkt.verify_message_authenticator() if ma_present else None
        key = (addr, pkt.id, bytes(pkt.authenticator))
        seen[key] = seen.get(key, 0) + 1
        user = (pkt.get("User-Name") or [""])[0]
        emit({
            "code": pkt.code,
            "id": pkt.id,
            "auth_ok": auth_ok,
            "ma_present": ma_present,
            "ma_ok": ma_ok,
            "transmission": seen[key],
            "attrs": attributes(pkt),
        })
        if not (auth_ok and ma_ok is not False) and not args.reply_on_bad_auth:
            continue

        reply = pkt.CreateReply()
        if user.startswith("silent-"):
            continue
        if user.startswith("drop1-") and seen[key] == 1:
            continue
        if user.startswith("nak-"):
            reply.code = (packet.DisconnectNAK if pkt.code == packet.DisconnectRequest
                          else packet.CoANAK)
            cause = user.split("-")[1]
            if cause != "none":
                reply["Error-Cause"] = int(cause)
        elif user.startswith("wrongcode-"):
            reply.code = packet.CoAACK if pkt.code == packet.DisconnectRequest \
                else packet.DisconnectACK
        else:
            reply.add_message_authenticator()
        if user.startswith("wrongid-"):
            # Correctly signed, but for an identifier that was not asked.
            reply.id = (pkt.id + 1) % 256
        data = reply.ReplyPacket()
        if user.startswith("othersrc-"):
            # As from behind a NAT or another interface: not the address asked.
            alt.sendto(data, addr)
            continue
        if user.startswith("late-"):
            threading.Timer(float(user.split("-")[1]) / 1000, sock.sendto, (data, addr)).start()
            continue
        if user.startswith("dup-"):
            sock.sendto(data, addr)
        if user.startswith("forged-"):
            forged = bytearray(data)
            forged[4] ^= 0xFF
            sock.sendto(bytes(forged), addr)
        sock.sendto(data, addr)


if __name__ == "__main__":
    main()
