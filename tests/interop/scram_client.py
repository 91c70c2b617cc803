#!/usr/bin/env python3
"""A SCRAM login over MQTT 5 enhanced authentication, with PyPI's `scramp` doing the SCRAM
side (an implementation independent of Tollgate's) over a raw MQTT 5 socket client.

    scram_client.py --host H --port P --user U --password W --mechanism SCRAM-SHA-256 \
        --expect success|0x86

CONNECT carries the client-first message; the broker's AUTH 0x18 carries server-first; the
client answers with AUTH 0x18 (client-final); CONNACK carries server-final, which scramp
verifies (it raises if the broker did not prove it knew the keys). On success the client
subscribes and publishes one QoS 0 message to itself. Exit status 0 when the outcome is the
expected one; the reason is printed otherwise.
"""

import argparse
import socket
import struct
import sys

from scramp import ScramClient


def varint(n):
    out = bytearray()
    while True:
        byte = n % 128
        n //= 128
        if n:
            byte |= 0x80
        out.append(byte)
        if not n:
            return bytes(out)


def utf8(s):
    b = s.encode()
    return struct.pack(">H", len(b)) + b


def binary(b):
    return struct.pack(">H", len(b)) + b


def packet(first_byte, body):
    return bytes([first_byte]) + varint(len(body)) + body


def auth_properties(method, data):
    props = b"\x15" + utf8(method) + b"\x16" + binary(data)
    return varint(len(props)) + props


def connect(client_id, method, data):
    variable = utf8("MQTT") + b"\x05" + b"\x02" + struct.pack(">H", 30)
    return packet(0x10, variable + auth_properties(method, data) + utf8(client_id))


def auth(reason, method, data):
    return packet(0xF0, bytes([reason]) + auth_properties(method, data))


class Reader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def take(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise EOFError("the broker closed the connection")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def packet(self):
        first = self.take(1)[0]
        length, shift = 0, 0
        while True:
            byte = self.take(1)[0]
            length += (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        return first, self.take(length)


def properties(body, at):
    """Authentication method and data from the property block at `at`."""
    length, shift, i = 0, 0, at
    while True:
        byte = body[i]
        i += 1
        length += (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    end = i + length
    found = {}
    while i < end:
        pid = body[i]
        i += 1
        if pid in (0x15, 0x16, 0x1F, 0x12):
            (n,) = struct.unpack(">H", body[i:i + 2])
            found[pid] = body[i + 2:i + 2 + n]
            i += 2 + n
        elif pid == 0x26:
            for _ in range(2):
                (n,) = struct.unpack(">H", body[i:i + 2])
                i += 2 + n
        elif pid in (0x11, 0x27):
            i += 4
        elif pid in (0x21, 0x22, 0x13):
            i += 2
        elif pid in (0x24, 0x25, 0x28, 0x29, 0x2A, 0x17, 0x19):
            i += 1
        else:
            raise ValueError(f"property 0x{pid:02x} not expected here")
    return found


def run(args):
    client = ScramClient([args.mechanism], args.user, args.password)
    sock = socket.create_connection((args.host, args.port), timeout=10)
    reader = Reader(sock)
    sock.sendall(connect(args.client_id, args.mechanism, client.get_client_first().encode()))
    first, body = reader.packet()
    if first >> 4 == 2:
        return f"0x{body[1]:02x}", "CONNACK before any challenge"
    if first >> 4 != 15 or body[0] != 0x18:
        return "error", f"expected AUTH 0x18, got packet type {first >> 4}"
    props = properties(body, 1)
    if props.get(0x15) != args.mechanism.encode():
        return "error", f"AUTH with method {props.get(0x15)!r}"
    client.set_server_first(props[0x16].decode())
    sock.sendall(auth(0x18, args.mechanism, client.get_client_final().encode()))
    first, body = reader.packet()
    if first >> 4 != 2:
        return "error", f"expected CONNACK, got packet type {first >> 4}"
    code = body[1]
    if code != 0:
        return f"0x{code:02x}", "refused"
    props = properties(body, 2)
    # scramp raises ScramException when the signature is not the broker's.
    client.set_server_final(props[0x16].decode())
    topic = f"scram/{args.client_id}"
    sock.sendall(packet(0x82, struct.pack(">H", 1) + b"\x00" + utf8(topic) + b"\x00"))
    first, _ = reader.packet()
    if first >> 4 != 9:
        return "error", f"expected SUBACK, got packet type {first >> 4}"
    sock.sendall(packet(0x30, utf8(topic) + b"\x00" + b"proved"))
    first, body = reader.packet()
    if first >> 4 != 3 or not body.endswith(b"proved"):
        return "error", "own message not received"
    sock.sendall(packet(0xE0, b""))
    return "success", "connected, broker proof verified by scramp, message round trip"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--mechanism", default="SCRAM-SHA-256")
    p.add_argument("--client-id", default="scramp-client")
    p.add_argument("--expect", default="success")
    args = p.parse_args()
    try:
        outcome, detail = run(args)
    except Exception as e:  # noqa: BLE001 - every failure is reported, not raised
        outcome, detail = "error", f"{type(e).__name__}: {e}"
    print(f"{args.mechanism} {args.user}: {outcome} ({detail})")
    sys.exit(0 if outcome == args.expect else 1)


if __name__ == "__main__":
    main()
