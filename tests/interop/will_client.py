#!/usr/bin/env python3
"""Connect to a broker with a Last Will, then leave abruptly or cleanly.

Usage: python3 will_client.py --port PORT --protocol {31,311,5}
                              --topic T --payload P [--qos Q] --mode {abrupt,clean}

abrupt: after CONNACK the TCP socket is shut down and closed without sending
        DISCONNECT (the broker must publish the will).
clean:  after CONNACK a normal DISCONNECT is sent (the broker must discard the will).

Prints "connected" once CONNACK is received, and exits 0 on success, non-zero
(with a message on stderr) otherwise. Every wait is bounded.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time

import paho.mqtt.client as mqtt

PROTOCOLS = {"31": mqtt.MQTTv31, "311": mqtt.MQTTv311, "5": mqtt.MQTTv5}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--protocol", choices=sorted(PROTOCOLS), required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--payload", required=True)
    ap.add_argument("--qos", type=int, default=1)
    ap.add_argument("--client-id", default=f"tgwill{os.getpid()}")
    ap.add_argument("--mode", choices=["abrupt", "clean"], required=True)
    args = ap.parse_args()

    proto = PROTOCOLS[args.protocol]
    state = {"connack": None, "disconnected": False}

    def on_connect(client, userdata, flags, reason_code, properties):
        state["connack"] = reason_code

    def on_disconnect(client, userdata, flags, reason_code, properties):
        state["disconnected"] = True

    kwargs = {} if proto == mqtt.MQTTv5 else {"clean_session": True}
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=args.client_id[:23],
                    protocol=proto, **kwargs)
    c.on_connect = on_connect
    c.on_disconnect = on_disconnect
    c.will_set(args.topic, args.payload.encode(), qos=args.qos, retain=False)
    c.connect(args.host, args.port, keepalive=30)

    deadline = time.monotonic() + 5
    while state["connack"] is None and time.monotonic() < deadline:
        c.loop(timeout=0.1)
    if state["connack"] is None:
        print("will_client: no CONNACK within 5s", file=sys.stderr)
        return 2
    rc = state["connack"]
    if (rc.value if hasattr(rc, "value") else int(rc)) != 0:
        print(f"will_client: CONNACK refused: {rc}", file=sys.stderr)
        return 2
    print("connected", flush=True)

    if args.mode == "abrupt":
        # Drop the connection without DISCONNECT, as a crashed client would.
        sock = c.socket()
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()
        sys.stdout.flush()
        os._exit(0)

    c.disconnect()
    deadline = time.monotonic() + 5
    while not state["disconnected"] and time.monotonic() < deadline:
        c.loop(timeout=0.1)
    if not state["disconnected"]:
        print("will_client: DISCONNECT not completed within 5s", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
