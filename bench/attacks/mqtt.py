"""Hand-built MQTT 3.1.1 / 5.0 packets and a few readers (standard library only).

Only what the attack harness needs: CONNECT (with will, user name, password, a few 5.0
properties), SUBSCRIBE, PUBLISH, PUBACK, PINGREQ, DISCONNECT, and parsers for what comes back
(CONNACK, SUBACK, PUBLISH, PUBACK, DISCONNECT). Nothing here validates what it builds: the
point is to send what a hostile client sends.
"""

import asyncio
import socket
import struct
import time

# Packet types (upper nibble of the first byte).
CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = (
    8, 9, 10, 11, 12, 13, 14, 15)

V311, V5 = 4, 5

NAMES = {1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC", 6: "PUBREL",
         7: "PUBCOMP", 8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE", 11: "UNSUBACK",
         12: "PINGREQ", 13: "PINGRESP", 14: "DISCONNECT", 15: "AUTH"}


# --------------------------------------------------------------------------- encoding

def varint(n: int) -> bytes:
    """MQTT variable byte integer."""
    out = bytearray()
    while True:
        byte = n % 128
        n //= 128
        if n:
            byte |= 0x80
        out.append(byte)
        if not n:
            return bytes(out)


def utf8(s) -> bytes:
    """Two-byte length prefix, then the bytes (str is UTF-8 encoded; no checks)."""
    b = s.encode() if isinstance(s, str) else bytes(s)
    return struct.pack("!H", len(b)) + b


binary = utf8


def packet(ptype: int, flags: int, body: bytes) -> bytes:
    return bytes([(ptype << 4) | flags]) + varint(len(body)) + body


def properties(props: dict | None) -> bytes:
    """5.0 properties: a small subset, keyed by name."""
    if not props:
        return varint(0)
    out = bytearray()
    for key, value in props.items():
        if key == "session_expiry":
            out += b"\x11" + struct.pack("!I", value)
        elif key == "receive_maximum":
            out += b"\x21" + struct.pack("!H", value)
        elif key == "max_packet_size":
            out += b"\x27" + struct.pack("!I", value)
        elif key == "will_delay":
            out += b"\x18" + struct.pack("!I", value)
        elif key == "message_expiry":
            out += b"\x02" + struct.pack("!I", value)
        else:
            raise ValueError(f"property {key} not supported")
    return varint(len(out)) + bytes(out)


def connect(client_id, version=V311, clean=True, keepalive=60, username=None, password=None,
            will=None, props=None) -> bytes:
    """CONNECT. `will`: dict(topic, payload, qos=0, retain=False, props=None)."""
    flags = 0x02 if clean else 0
    payload = utf8(client_id)
    if will is not None:
        flags |= 0x04 | (will.get("qos", 0) << 3) | (0x20 if will.get("retain") else 0)
        if version == V5:
            payload += properties(will.get("props"))
        payload += utf8(will["topic"]) + binary(will["payload"])
    if username is not None:
        flags |= 0x80
        payload += utf8(username)
    if password is not None:
        flags |= 0x40
        payload += binary(password)
    var = utf8("MQTT") + bytes([version, flags]) + struct.pack("!H", keepalive)
    if version == V5:
        var += properties(props)
    return packet(CONNECT, 0, var + payload)


def subscribe(pid: int, filters, version=V311) -> bytes:
    """SUBSCRIBE; `filters`: list of (filter, qos)."""
    body = bytearray(struct.pack("!H", pid))
    if version == V5:
        body += varint(0)
    for f, qos in filters:
        body += utf8(f)
        body.append(qos)
    return packet(SUBSCRIBE, 0x02, bytes(body))


def subscribe_raw(pid: int, entries: bytes, version=V311) -> bytes:
    """SUBSCRIBE whose payload (filter, options pairs) is already encoded."""
    body = struct.pack("!H", pid) + (varint(0) if version == V5 else b"") + entries
    return packet(SUBSCRIBE, 0x02, body)


def publish(topic, payload: bytes, qos=0, pid=0, retain=False, dup=False, version=V311) -> bytes:
    flags = (qos << 1) | (0x01 if retain else 0) | (0x08 if dup else 0)
    body = utf8(topic)
    if qos:
        body += struct.pack("!H", pid)
    if version == V5:
        body += varint(0)
    return packet(PUBLISH, flags, body + payload)


def publish_header(topic, payload_len: int, qos=0, pid=0, retain=False, version=V311) -> bytes:
    """The bytes of a PUBLISH up to (not including) its payload of `payload_len` bytes."""
    flags = (qos << 1) | (0x01 if retain else 0)
    var = utf8(topic) + (struct.pack("!H", pid) if qos else b"") + (varint(0) if version == V5 else b"")
    return bytes([(PUBLISH << 4) | flags]) + varint(len(var) + payload_len) + var


def puback(pid: int) -> bytes:
    return packet(PUBACK, 0, struct.pack("!H", pid))


def pingreq() -> bytes:
    return b"\xc0\x00"


def disconnect(version=V311, reason=0) -> bytes:
    if version == V5 and reason:
        return packet(DISCONNECT, 0, bytes([reason]) + varint(0))
    return b"\xe0\x00"


# --------------------------------------------------------------------------- decoding

def parse_connack(body: bytes, version=V311):
    """(session_present, return / reason code)."""
    if len(body) < 2:
        return (False, -1)
    return (bool(body[0] & 1), body[1])


def parse_suback(body: bytes, version=V311):
    """(packet id, list of codes)."""
    pid = struct.unpack("!H", body[:2])[0]
    i = 2
    if version == V5:
        plen, i = decode_varint(body, i)
        i += plen
    return pid, list(body[i:])


def parse_publish(flags: int, body: bytes, version=V311):
    """(topic bytes, qos, packet id or None, payload)."""
    tlen = struct.unpack("!H", body[:2])[0]
    topic = body[2:2 + tlen]
    i = 2 + tlen
    qos = (flags >> 1) & 3
    pid = None
    if qos:
        pid = struct.unpack("!H", body[i:i + 2])[0]
        i += 2
    if version == V5:
        plen, i = decode_varint(body, i)
        i += plen
    return topic, qos, pid, body[i:]


def parse_puback(body: bytes):
    """(packet id, reason code; 0 when absent)."""
    pid = struct.unpack("!H", body[:2])[0]
    return pid, (body[2] if len(body) > 2 else 0)


def parse_disconnect(body: bytes):
    return body[0] if body else 0


def decode_varint(buf, i=0):
    mult, value = 1, 0
    while True:
        b = buf[i]
        i += 1
        value += (b & 0x7F) * mult
        if not b & 0x80:
            return value, i
        mult *= 128
        if mult > 128 ** 3:
            raise ValueError("malformed remaining length")


# --------------------------------------------------------------------------- readers

class Closed(Exception):
    """The peer closed the connection."""


async def read_packet(reader: asyncio.StreamReader, skip_body=False):
    """(type, flags, body) of the next packet. `skip_body`: read and drop a large body
    without keeping it (body is then None). Raises Closed at end of stream."""
    try:
        first = await reader.readexactly(1)
        mult, length = 1, 0
        while True:
            b = (await reader.readexactly(1))[0]
            length += (b & 0x7F) * mult
            if not b & 0x80:
                break
            mult *= 128
            if mult > 128 ** 3:
                raise ValueError("malformed remaining length")
        if skip_body:
            left = length
            while left:
                chunk = await reader.read(min(left, 65536))
                if not chunk:
                    raise Closed()
                left -= len(chunk)
            body = None
        else:
            body = await reader.readexactly(length) if length else b""
    except (asyncio.IncompleteReadError, ConnectionError):
        raise Closed() from None
    return first[0] >> 4, first[0] & 0x0F, body


async def expect(reader, ptype, timeout):
    """Reads packets until one of type `ptype` (others are dropped); returns (flags, body)."""
    async def loop():
        while True:
            t, f, body = await read_packet(reader)
            if t == ptype:
                return f, body
    return await asyncio.wait_for(loop(), timeout)


def _recv_exact(sock: socket.socket, n: int, deadline: float) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("deadline")
        sock.settimeout(left)
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise Closed()
        buf += chunk
    return bytes(buf)


def recv_packet(sock: socket.socket, deadline: float):
    """Blocking read of one packet before `deadline` (time.monotonic())."""
    first = _recv_exact(sock, 1, deadline)[0]
    mult, length = 1, 0
    while True:
        b = _recv_exact(sock, 1, deadline)[0]
        length += (b & 0x7F) * mult
        if not b & 0x80:
            break
        mult *= 128
    body = _recv_exact(sock, length, deadline) if length else b""
    return first >> 4, first & 0x0F, body


def set_linger0(sock_or_writer):
    """Close with RST (no TIME_WAIT): the harness opens tens of thousands of connections."""
    sock = sock_or_writer
    if hasattr(sock_or_writer, "get_extra_info"):
        sock = sock_or_writer.get_extra_info("socket")
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
