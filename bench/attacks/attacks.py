"""The attack classes. Each is `async def name(ctx)`: it runs against the broker `ctx` started
for it, records what the attacker achieved in `ctx.counts`, remarks in `ctx.notes` and
expectations it found broken in `ctx.issues`. Every wait has a timeout; loops end when the
broker dies (`ctx.running()`), and the runner cancels the whole attack past its budget.
"""

import asyncio
import base64
import hashlib
import os
import re
import socket
import struct
import time

import mqtt

GOOD_BIND = "127.0.0.2"


# --------------------------------------------------------------------------- helpers

def bump(d, key, n=1):
    d[key] = d.get(key, 0) + n


async def open_conn(ctx, port=None, host=None, bind=None, rcvbuf=None, timeout=3.0, limit=65536):
    """A TCP connection to the broker as asyncio streams; tracked so the runner closes it."""
    loop = asyncio.get_running_loop()
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if bind:
            s.bind((bind, 0))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        await asyncio.wait_for(loop.sock_connect(s, (host or ctx.host, port or ctx.port)), timeout)
        r, w = await asyncio.open_connection(sock=s, limit=limit)
    except BaseException:
        s.close()
        raise
    ctx.writers.add(w)
    return r, w


def stop_reading(w):
    """Never read again: asyncio would otherwise keep draining the kernel buffer."""
    try:
        w.transport.pause_reading()
    except (AttributeError, RuntimeError):
        pass


def abort(w):
    """Drop the connection at once with a RST (no DISCONNECT, no TIME_WAIT)."""
    mqtt.set_linger0(w)
    try:
        w.transport.abort()
    except Exception:
        pass


async def send(w, data, timeout=5.0):
    w.write(data)
    await asyncio.wait_for(w.drain(), timeout)


async def mqtt_conn(ctx, client_id, version=mqtt.V311, timeout=5.0, **kw):
    """Connect and CONNECT; returns (reader, writer, connack code, session present)."""
    conn_kw = {k: kw.pop(k) for k in ("bind", "rcvbuf", "port", "host") if k in kw}
    r, w = await open_conn(ctx, timeout=timeout, **conn_kw)
    try:
        await send(w, mqtt.connect(client_id, version, **kw), timeout)
        _, body = await mqtt.expect(r, mqtt.CONNACK, timeout)
    except BaseException:
        abort(w)
        ctx.writers.discard(w)
        raise
    present, code = mqtt.parse_connack(body, version)
    return r, w, code, present


async def sleep_while_running(ctx, seconds, step=0.1):
    end = time.monotonic() + seconds
    while ctx.running() and time.monotonic() < end:
        await asyncio.sleep(min(step, max(0.0, end - time.monotonic())))


def ms_summary(values):
    if not values:
        return "-"
    s = sorted(values)
    return "p50 %.1f / p99 %.1f / max %.1f ms" % (
        s[len(s) // 2], s[min(len(s) - 1, int(0.99 * (len(s) - 1) + 0.5))], s[-1])


# --------------------------------------------------------------------------- 1. deep-will

async def deep_will(ctx):
    """A retained will whose topic is 65 000 `/` (65 001 empty levels), the connection dropped
    without DISCONNECT, then a subscriber to `#`."""
    topic = "/" * 65000
    will = {"topic": topic, "payload": b"deep will", "qos": 0, "retain": True}
    try:
        _, w, code, _ = await mqtt_conn(ctx, "deep-will", will=will, keepalive=60)
        ctx.counts["will_connack"] = code
    except (asyncio.TimeoutError, mqtt.Closed, OSError) as e:
        ctx.counts["will_connack"] = f"none ({type(e).__name__})"
        w = None
    if w is not None:
        await asyncio.sleep(0.2)
        abort(w)  # no DISCONNECT: the will is published
    await sleep_while_running(ctx, 0.5)
    if not ctx.running():
        ctx.notes.append("broker died after the will")
        return
    try:
        r, w, code, _ = await mqtt_conn(ctx, "deep-sub")
        await send(w, mqtt.subscribe(1, [("#", 0)]))
        ctx.counts["sub_connack"] = code
        got = 0
        deep = 0
        end = time.monotonic() + 3.0
        while time.monotonic() < end:
            try:
                t, f, body = await asyncio.wait_for(mqtt.read_packet(r), end - time.monotonic())
            except asyncio.TimeoutError:
                break
            if t == mqtt.SUBACK:
                ctx.counts["suback"] = mqtt.parse_suback(body)[1]
            elif t == mqtt.PUBLISH:
                tp, _, _, _ = mqtt.parse_publish(f, body)
                got += 1
                if len(tp) > 1000:
                    deep += 1
        ctx.counts["retained_received"] = got
        ctx.counts["deep_topic_received"] = deep
    except mqtt.Closed:
        ctx.counts["subscriber"] = "closed"
    except (asyncio.TimeoutError, OSError) as e:
        ctx.counts["subscriber"] = type(e).__name__
    await sleep_while_running(ctx, 0.5)


# --------------------------------------------------------------------------- 2. subscribe-repeat

async def publish_retained(ctx, count=200, size=100):
    r, w, code, _ = await mqtt_conn(ctx, "retainer")
    payload = b"r" * size
    w.write(b"".join(mqtt.publish(f"r/{i}", payload, qos=0, retain=True) for i in range(count)))
    w.write(mqtt.pingreq())
    await asyncio.wait_for(w.drain(), 5)
    await mqtt.expect(r, mqtt.PINGRESP, 5)
    ctx.counts["retained"] = count
    abort(w)


async def subscribe_repeat(ctx):
    """200 retained messages, then one SUBSCRIBE with 100 000 copies of `#`; never read."""
    await publish_retained(ctx)
    n = ctx.n(100_000)
    entries = b"\x00\x01#\x00" * n
    pkt = mqtt.subscribe_raw(7, entries)
    ctx.counts["filters"] = n
    ctx.counts["subscribe_bytes"] = len(pkt)
    r, w, code, _ = await mqtt_conn(ctx, "sub-repeat", rcvbuf=4096)
    stop_reading(w)
    t0 = time.monotonic()
    try:
        await send(w, pkt, timeout=10)
        ctx.counts["subscribe_sent_s"] = round(time.monotonic() - t0, 2)
    except asyncio.TimeoutError:
        ctx.counts["subscribe_sent_s"] = "not all sent in 10 s"
    await sleep_while_running(ctx, ctx.dur(10))
    ctx.counts["held_s"] = round(time.monotonic() - t0, 1)


async def subscribe_repeat_distinct(ctx):
    """200 retained messages, then one SUBSCRIBE with as many distinct filters as fit in
    ~390 KiB: the wildcards matching everything, the 200 retained topics, then `d/<i>`."""
    await publish_retained(ctx)
    budget = int(390 * 1024 * ctx.scale)
    parts, size, i = [], 0, 0
    names = ["#", "+/#", "r/#", "r/+", "+/+"] + [f"r/{k}" for k in range(200)]
    while size < budget:
        f = names[i] if i < len(names) else f"d/{i}"
        e = mqtt.utf8(f) + b"\x00"
        parts.append(e)
        size += len(e)
        i += 1
    pkt = mqtt.subscribe_raw(7, b"".join(parts))
    ctx.counts["filters"] = len(parts)
    ctx.counts["subscribe_bytes"] = len(pkt)
    r, w, code, _ = await mqtt_conn(ctx, "sub-distinct", rcvbuf=4096)
    t0 = time.monotonic()
    try:
        await send(w, pkt, timeout=10)
        _, body = await mqtt.expect(r, mqtt.SUBACK, 15)
        codes = mqtt.parse_suback(body)[1]
        ctx.counts["suback_ms"] = round((time.monotonic() - t0) * 1000)
        ctx.counts["granted"] = sum(1 for c in codes if c < 0x80)
        ctx.counts["refused"] = sum(1 for c in codes if c >= 0x80)
    except asyncio.TimeoutError:
        ctx.counts["suback"] = "timeout"
    except mqtt.Closed:
        ctx.counts["suback"] = "closed"
    stop_reading(w)  # from here on, like the first variant: the retained flood is not read
    await sleep_while_running(ctx, ctx.dur(8))


# --------------------------------------------------------------------------- 3. ws-ping

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def ws_frame(opcode, payload, mask=None):
    mask = mask or os.urandom(4)
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, 0x80 | n])
    elif n < 65536:
        head = bytes([0x80 | opcode, 0x80 | 126]) + struct.pack("!H", n)
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + struct.pack("!Q", n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


async def ws_open(ctx, port, path="/"):
    r, w = await open_conn(ctx, port=port)
    key = base64.b64encode(os.urandom(16)).decode()
    req = (f"GET {path} HTTP/1.1\r\nHost: {ctx.host}:{port}\r\nUpgrade: websocket\r\n"
           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
           f"Sec-WebSocket-Protocol: mqtt\r\n\r\n")
    await send(w, req.encode())
    head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
    expect_accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
    text = head.decode(errors="replace")
    if " 101 " not in text.split("\r\n")[0] or expect_accept not in text:
        raise RuntimeError(f"upgrade refused: {text.splitlines()[0] if text else '?'}")
    return r, w


async def ws_ping(ctx):
    """WebSocket, CONNECT, then masked 125-byte pings as fast as possible, never reading."""
    r, w = await ws_open(ctx, ctx.ws_port)
    await send(w, ws_frame(0x2, mqtt.connect("ws-pinger", keepalive=60)))
    stop_reading(w)
    frames_per_chunk = 512
    chunk = b"".join(ws_frame(0x9, os.urandom(125)) for _ in range(frames_per_chunk))
    t0 = time.monotonic()
    end = t0 + ctx.dur(5)
    sent = 0
    stalled = 0.0
    while ctx.running() and time.monotonic() < end:
        w.write(chunk)
        ts = time.monotonic()
        try:
            await asyncio.wait_for(w.drain(), max(0.05, end - ts))
        except asyncio.TimeoutError:
            stalled += time.monotonic() - ts
            ctx.counts["write_blocked_at_end"] = True
            break
        except (ConnectionError, OSError):
            ctx.counts["closed_by_broker"] = True
            break
        sent += frames_per_chunk
        if time.monotonic() - ts > 0.2:
            stalled += time.monotonic() - ts
    ctx.counts["pings_sent"] = sent
    ctx.counts["ping_bytes_MiB"] = round(sent * len(chunk) / frames_per_chunk / 2**20, 1)
    ctx.counts["pong_bytes_owed_MiB"] = round(sent * 127 / 2**20, 1)
    ctx.counts["stalled_s"] = round(stalled, 1)


# --------------------------------------------------------------------------- 4./5. passwords

def code_name(code, version=mqtt.V311):
    return f"{code:#04x}" if version == mqtt.V5 else str(code)


async def guess(ctx, i, password, codes, version=mqtt.V311, bind=None, timeout=5.0):
    try:
        _, w, code, _ = await mqtt_conn(ctx, f"guess-{i}", version=version, username="alice",
                                        password=password, bind=bind, timeout=timeout)
        bump(codes, code_name(code, version))
        abort(w)
        ctx.writers.discard(w)
        return code
    except asyncio.TimeoutError:
        bump(codes, "timeout")
    except mqtt.Closed:
        bump(codes, "closed")
    except ConnectionRefusedError:
        bump(codes, "refused")
    except OSError as e:
        bump(codes, f"error:{e.errno}")
    return None


async def password_burst(ctx):
    """400 parallel connections, each CONNECT as alice with a wrong password, again and again
    for ~10 s."""
    parallel = ctx.n(400)
    end = time.monotonic() + ctx.dur(10)
    codes = {}
    attempts = [0]

    async def worker(k):
        j = 0
        while ctx.running() and time.monotonic() < end:
            j += 1
            attempts[0] += 1
            await guess(ctx, f"{k}-{j}", b"wrong-%d-%d" % (k, j), codes)
    await asyncio.gather(*(worker(k) for k in range(parallel)))
    ctx.counts["parallel"] = parallel
    ctx.counts["attempts"] = attempts[0]
    ctx.counts["codes"] = codes


async def password_burst_serial(ctx):
    """200 wrong passwords, one at a time; the RSS after is the figure."""
    n = ctx.n(200)
    codes = {}
    t0 = time.monotonic()
    for i in range(n):
        if not ctx.running() or time.monotonic() - t0 > 22:
            ctx.notes.append(f"stopped after {i} attempts")
            break
        await guess(ctx, i, b"wrong-%d" % i, codes, timeout=8)
    ctx.counts["attempts"] = n
    ctx.counts["codes"] = codes
    ctx.counts["elapsed_s"] = round(time.monotonic() - t0, 1)


async def parallel_guess(ctx):
    """200 simultaneous wrong passwords for one user: how many were checked (4) and how many
    throttled (3 / 5)."""
    n = ctx.n(200)
    conns = []

    async def opener(i):
        try:
            conns.append(await open_conn(ctx))
        except (asyncio.TimeoutError, OSError):
            pass
    await asyncio.gather(*(opener(i) for i in range(n)))
    ctx.counts["connections"] = len(conns)
    codes = {}
    times = []
    t0 = time.monotonic()

    async def one(i, r, w):
        try:
            w.write(mqtt.connect(f"pg-{i}", username="alice", password=b"guess-%d" % i))
            await asyncio.wait_for(w.drain(), 5)
            _, body = await mqtt.expect(r, mqtt.CONNACK, 20)
            bump(codes, str(mqtt.parse_connack(body)[1]))
            times.append((time.monotonic() - t0) * 1000)
        except asyncio.TimeoutError:
            bump(codes, "timeout")
        except (mqtt.Closed, OSError):
            bump(codes, "closed")
    # All CONNECTs written in the same loop iteration, as close to simultaneous as one
    # process gets.
    await asyncio.gather(*(one(i, r, w) for i, (r, w) in enumerate(conns)))
    checked = codes.get("4", 0)
    throttled = sum(codes.get(c, 0) for c in ("3", "5"))
    ctx.counts["codes"] = codes
    ctx.counts["checked(4)"] = checked
    ctx.counts["throttled(3/5)"] = throttled
    ctx.counts["answers"] = ms_summary(times)
    # free_failures (3) + max_parallel_hashes (2): anything above means the throttle was
    # raced by parallel attempts.
    if checked > 5:
        ctx.issues.append(f"{checked} of {len(conns)} parallel guesses were checked (expected <= 5)")


# --------------------------------------------------------------------------- 6. offline-queue

async def publisher_qos1(ctx, client_id, topic, payload, seconds, version=mqtt.V311, window=32):
    """QoS 1 publishes as fast as acknowledgements allow; returns the counts."""
    counts = {"sent": 0, "acked": 0, "puback_codes": {}}
    r, w, code, _ = await mqtt_conn(ctx, client_id, version=version)
    if code != 0:
        counts["connack"] = code
        return counts
    free = asyncio.Semaphore(window)
    end = time.monotonic() + seconds
    stop = asyncio.Event()

    async def acks():
        try:
            while True:
                t, f, body = await mqtt.read_packet(r)
                if t == mqtt.PUBACK:
                    _, rc = mqtt.parse_puback(body)
                    counts["acked"] += 1
                    bump(counts["puback_codes"], f"{rc:#04x}")
                    free.release()
                elif t == mqtt.DISCONNECT:
                    counts["disconnect"] = f"{mqtt.parse_disconnect(body):#04x}"
                    break
        except (mqtt.Closed, OSError):
            counts["closed_by_broker"] = True
        stop.set()
    reader = asyncio.create_task(acks())
    pid = 0
    try:
        while ctx.running() and time.monotonic() < end and not stop.is_set():
            try:
                await asyncio.wait_for(free.acquire(), max(0.01, min(2.0, end - time.monotonic())))
            except asyncio.TimeoutError:
                counts["ack_stalls"] = counts.get("ack_stalls", 0) + 1
                continue
            pid = pid % 65535 + 1
            w.write(mqtt.publish(topic, payload, qos=1, pid=pid, version=version))
            counts["sent"] += 1
            await asyncio.wait_for(w.drain(), max(0.05, end - time.monotonic()))
    except asyncio.TimeoutError:
        counts["write_blocked"] = True
    except (ConnectionError, OSError):
        counts["closed_by_broker"] = True
    await asyncio.sleep(0.2)
    reader.cancel()
    return counts


async def offline_queue(ctx, version=mqtt.V311):
    """A persistent session subscribed QoS 1 to q/# goes away; 64 KiB QoS 1 messages pour
    in for ~10 s."""
    props = {"session_expiry": 3600} if version == mqtt.V5 else None
    r, w, code, _ = await mqtt_conn(ctx, "oq-sub", version=version, clean=False, props=props)
    await send(w, mqtt.subscribe(1, [("q/#", 1)], version))
    _, body = await mqtt.expect(r, mqtt.SUBACK, 5)
    ctx.counts["suback"] = mqtt.parse_suback(body, version)[1]
    await send(w, mqtt.disconnect(version))
    await asyncio.sleep(0.2)
    abort(w)
    payload = os.urandom(64 * 1024)
    c = await publisher_qos1(ctx, "oq-pub", "q/x", payload, ctx.dur(10), version)
    ctx.counts.update(c)
    ctx.counts["queued_MiB_offered"] = round(c["acked"] * 64 / 1024, 1)


async def offline_queue_v5(ctx):
    await offline_queue(ctx, mqtt.V5)


# --------------------------------------------------------------------------- 7. slow-subscriber

async def slow_subscriber(ctx):
    """A subscriber to s/# (QoS 1, 4 KiB receive buffer) that never reads, while QoS 0 and
    QoS 1 messages of 16 KiB pour in."""
    r, w, code, _ = await mqtt_conn(ctx, "slow-sub", rcvbuf=4096)
    await send(w, mqtt.subscribe(1, [("s/#", 1)]))
    _, body = await mqtt.expect(r, mqtt.SUBACK, 5)
    stop_reading(w)
    payload = os.urandom(16 * 1024)
    seconds = ctx.dur(10)
    q0 = {"sent": 0}

    async def qos0():
        try:
            r0, w0, c0, _ = await mqtt_conn(ctx, "slow-pub0")
            pkt = mqtt.publish("s/0", payload) * 8
            end = time.monotonic() + seconds
            while ctx.running() and time.monotonic() < end:
                w0.write(pkt)
                await asyncio.wait_for(w0.drain(), max(0.05, end - time.monotonic()))
                q0["sent"] += 8
        except asyncio.TimeoutError:
            q0["write_blocked"] = True
        except (ConnectionError, OSError, mqtt.Closed):
            q0["closed_by_broker"] = True
    c1, _ = await asyncio.gather(publisher_qos1(ctx, "slow-pub1", "s/1", payload, seconds), qos0())
    ctx.counts["qos0"] = q0
    ctx.counts["qos1"] = c1
    ctx.counts["offered_MiB"] = round((q0["sent"] + c1["acked"]) * 16 / 1024, 1)


# --------------------------------------------------------------------------- 8. conn-flood

def _flood_sync(ctx, target, send_connect, open_deadline, hold_s, stop):
    """Opens non-blocking sockets in batches (much faster than asyncio streams), then polls
    them all for CONNACKs and closes. Runs in a thread; ends by itself within its deadlines."""
    import errno
    import select
    counts = ctx.counts
    failed, connacks = {}, {}
    socks = {}                       # fd -> socket, connected
    pkt = None
    poller = select.poll()
    t0 = time.monotonic()
    i = 0
    window = 100          # connects in flight: the accept backlog is 128, bigger bursts lose SYNs
    pending = {}          # fd -> (socket, started)
    wp = select.poll()
    while time.monotonic() < open_deadline and not stop.is_set() and ctx.running():
        while i < target and len(pending) < window:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            mqtt.set_linger0(s)
            rc = s.connect_ex((ctx.host, ctx.port))
            i += 1
            if rc not in (0, errno.EINPROGRESS):
                bump(failed, os.strerror(rc))
                s.close()
                continue
            pending[s.fileno()] = (s, time.monotonic())
            wp.register(s.fileno(), select.POLLOUT)
        if not pending:
            break
        for fd, ev in wp.poll(50):
            s, _ = pending.pop(fd)
            wp.unregister(fd)
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                bump(failed, os.strerror(err))
                s.close()
                continue
            if send_connect:
                try:
                    s.send(mqtt.connect(f"flood-{fd}-{i}", keepalive=600))
                except OSError as e:
                    bump(failed, f"send: {os.strerror(e.errno)}")
                    s.close()
                    continue
            socks[fd] = s
            poller.register(fd, select.POLLIN)
        now = time.monotonic()
        for fd in [fd for fd, (_, t) in pending.items() if now - t > 3]:
            s, _ = pending.pop(fd)
            wp.unregister(fd)
            bump(failed, "connect timeout (3 s)")
            s.close()
        if sum(failed.values()) > 2000:
            break
    for s, _ in pending.values():
        s.close()
    counts["opened"] = len(socks)
    counts["open_s"] = round(time.monotonic() - t0, 1)
    counts["failed"] = failed
    closed = 0
    hold_end = time.monotonic() + hold_s
    max_open = len(socks)
    while socks and time.monotonic() < hold_end and not stop.is_set():
        for fd, ev in poller.poll(200):
            s = socks.get(fd)
            if s is None:
                continue
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if data and data[0] >> 4 == mqtt.CONNACK and len(data) >= 4:
                bump(connacks, str(data[3]))
                continue
            if data:
                continue
            poller.unregister(fd)
            socks.pop(fd).close()
            closed += 1
        if not ctx.running():
            break
    counts["closed_by_broker"] = closed
    counts["still_open"] = len(socks)
    if send_connect:
        counts["connack"] = connacks
    for s in socks.values():
        s.close()
    counts["max_open"] = max_open


async def conn_flood(ctx, send_connect=False):
    """As many connections from 127.0.0.1 as possible (up to 20 000 or the descriptor limit),
    silent or CONNECT-and-idle; held ~10 s."""
    import resource
    import threading
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(ctx.n(20_000), soft - 200)
    ctx.counts["target"] = target
    stop = threading.Event()
    try:
        await asyncio.to_thread(_flood_sync, ctx, target, send_connect,
                                time.monotonic() + 16, ctx.dur(8), stop)
    finally:
        stop.set()


async def conn_flood_connect(ctx):
    await conn_flood(ctx, send_connect=True)


# --------------------------------------------------------------------------- 9. slowloris

async def big_packets_slowloris(ctx):
    """1 000 connections, each CONNECT then the first half of a 1 MiB PUBLISH, then silence."""
    n = ctx.n(1000)
    total = 1 << 20                       # the whole packet: 1 MiB (the default max_packet_size)
    rl = total - 1 - 3                    # remaining length (3-byte varint)
    topic = "big/x"
    header = mqtt.publish_header(topic, rl - 2 - len(topic))
    assert len(header) + rl - 2 - len(topic) == total
    half = header + bytes(total // 2 - len(header))
    opened, sent_half, closed = [0], [0], [0]
    connacks, failed = {}, {}
    sem = asyncio.Semaphore(64)
    deadline = time.monotonic() + 18
    watchers = []

    async def watch(r):
        try:
            while await r.read(4096):
                pass
        except OSError:
            pass
        closed[0] += 1

    async def one(i):
        async with sem:
            if time.monotonic() > deadline or not ctx.running():
                return
            try:
                r, w, code, _ = await mqtt_conn(ctx, f"loris-{i}", keepalive=600, timeout=5)
                mqtt.set_linger0(w)
                bump(connacks, str(code))
                opened[0] += 1
                watchers.append(asyncio.create_task(watch(r)))
                for k in range(0, len(half), 65536):
                    w.write(half[k:k + 65536])
                    await asyncio.wait_for(w.drain(), 3)
                sent_half[0] += 1
            except asyncio.TimeoutError:
                bump(failed, "timeout")
            except (mqtt.Closed, ConnectionError):
                bump(failed, "closed")
            except OSError as e:
                bump(failed, os.strerror(e.errno) if e.errno else type(e).__name__)
    t0 = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(n)))
    ctx.counts["connections"] = opened[0]
    ctx.counts["half_sent"] = sent_half[0]
    ctx.counts["MiB_sent"] = round(sent_half[0] * len(half) / 2**20)
    ctx.counts["send_s"] = round(time.monotonic() - t0, 1)
    ctx.counts["connack"] = connacks
    ctx.counts["failed"] = failed
    await sleep_while_running(ctx, ctx.dur(8))
    ctx.counts["closed_by_broker"] = closed[0]
    for t in watchers:
        t.cancel()


# --------------------------------------------------------------------------- 10. log-forgery

FORGED = ("2025-01-01T00:00:00.000000Z  INFO tollgate::audit: authentication "
          "listener=127.0.0.1:1883 peer=203.0.113.7:40000 client_id=FORGED-admin "
          "username=admin authenticator=users outcome=allow")


async def log_forgery(ctx):
    """A client identifier (and, separately, a user name) holding "\\n" and a fake audit line."""
    vectors = {
        "client_id": dict(client_id="probe\n" + FORGED + " vector=client_id"),
        "username": dict(client_id="probe-user", username="u\n" + FORGED + " vector=username"),
        "will_topic": dict(client_id="probe-will",
                           will={"topic": "w\n" + FORGED + " vector=will_topic", "payload": b"x"}),
    }
    for name, kw in vectors.items():
        cid = kw.pop("client_id")
        try:
            _, w, code, _ = await mqtt_conn(ctx, cid, **kw)
            ctx.counts[f"{name}_connack"] = code
            await asyncio.sleep(0.1)
            abort(w)
        except (asyncio.TimeoutError, mqtt.Closed, OSError) as e:
            ctx.counts[f"{name}_connack"] = type(e).__name__
    await asyncio.sleep(1.0)
    forged = []
    with open(ctx.stderr_path, "rb") as f:
        for line in f.read().decode(errors="replace").splitlines():
            if line.startswith(FORGED):
                m = re.search(r"vector=(\w+)", line)
                forged.append(m.group(1) if m else "?")
    ctx.counts["forged_lines"] = len(forged)
    if forged:
        by = {}
        for v in forged:
            bump(by, v)
        ctx.counts["forged_by"] = by
        ctx.issues.append("forged audit line(s) in the log via " + ", ".join(by))


# --------------------------------------------------------------------------- 11. takeover

async def takeover(ctx, version=mqtt.V5):
    """Same client id, clean start 0, a second connection while the first stays open: the
    first must get DISCONNECT 0x8E (5.0) or be closed at once; a message published right after
    the takeover must reach the new connection quickly. Repeated: each round's new connection
    is the next round's old one."""
    rounds = ctx.n(10)
    props = {"session_expiry": 300} if version == mqtt.V5 else None
    topic = "t/victim"
    pr, pw, _, _ = await mqtt_conn(ctx, "takeover-pub", version=version)
    ar, aw, code, _ = await mqtt_conn(ctx, "victim", version=version, clean=False, props=props)
    await send(aw, mqtt.subscribe(1, [(topic, 1)], version))
    await mqtt.expect(ar, mqtt.SUBACK, 5)
    reasons, told_ms, deliver_ms, present = {}, [], [], {}
    c = ctx.counts
    c.update(rounds_done=0, lost=0, to_old_connection=0)
    pid = 0

    async def watch_old(r, t0, payload):
        try:
            while True:
                t, f, body = await asyncio.wait_for(mqtt.read_packet(r), 1.0)
                if t == mqtt.DISCONNECT:
                    bump(reasons, f"DISCONNECT {mqtt.parse_disconnect(body):#04x}")
                    break
                if t == mqtt.PUBLISH and mqtt.parse_publish(f, body, version)[3] == payload:
                    c["to_old_connection"] += 1
        except asyncio.TimeoutError:
            bump(reasons, "still open after 1 s")
            return
        except (mqtt.Closed, OSError):
            bump(reasons, "closed")
        told_ms.append((time.monotonic() - t0) * 1000)

    for k in range(rounds):
        if not ctx.running():
            break
        payload = b"after takeover %d" % k
        t0 = time.monotonic()
        watcher = asyncio.create_task(watch_old(ar, t0, payload))
        try:
            br, bw, code, sp = await mqtt_conn(ctx, "victim", version=version, clean=False,
                                               props=props)
        except (asyncio.TimeoutError, mqtt.Closed, OSError) as e:
            bump(reasons, f"new connection failed: {type(e).__name__}")
            watcher.cancel()
            break
        bump(present, f"session_present={int(sp)}")
        pid = pid % 65535 + 1
        t1 = time.monotonic()
        pw.write(mqtt.publish(topic, payload, qos=1, pid=pid, version=version))
        try:
            while True:
                t, f, body = await asyncio.wait_for(mqtt.read_packet(br), 2)
                if t == mqtt.PUBLISH:
                    _, qos, mpid, pl = mqtt.parse_publish(f, body, version)
                    if qos:
                        bw.write(mqtt.puback(mpid))
                    if pl == payload:
                        deliver_ms.append((time.monotonic() - t1) * 1000)
                        break
        except (asyncio.TimeoutError, mqtt.Closed, OSError):
            c["lost"] += 1
        await watcher
        abort(aw)
        ar, aw = br, bw
        c["rounds_done"] = k + 1
        c["old_connection"] = reasons
        c["old_ended"] = ms_summary(told_ms)
        c["delivery"] = ms_summary(deliver_ms)
        c["session"] = present
    lost = c["lost"]
    if version == mqtt.V5:
        bad = sum(v for k, v in reasons.items() if k != "DISCONNECT 0x8e")
    else:
        bad = sum(v for k, v in reasons.items() if k not in ("closed",))
    if bad:
        ctx.issues.append(f"{bad} old connection(s) not ended as expected")
    if lost:
        ctx.issues.append(f"{lost} message(s) published after a takeover not delivered to the new connection in 2 s"
                          + (f" ({c['to_old_connection']} went to the old one)" if c["to_old_connection"] else ""))
    if deliver_ms and max(deliver_ms) > 100:
        ctx.issues.append(f"delivery after takeover took up to {max(deliver_ms):.0f} ms")
    if told_ms and max(told_ms) > 100:
        ctx.issues.append(f"old connection ended up to {max(told_ms):.0f} ms after the takeover")


async def takeover_v311(ctx):
    await takeover(ctx, mqtt.V311)


# --------------------------------------------------------------------------- registry

# name, function, configuration kind, RSS goal (MiB), one line.
ATTACKS = [
    ("deep-will", deep_will, "default", 256, "retained will with a 65 000-level topic, then #"),
    ("subscribe-repeat", subscribe_repeat, "default", 256, "SUBSCRIBE x100 000 '#' over 200 retained, unread"),
    ("subscribe-repeat/distinct", subscribe_repeat_distinct, "default", 256, "SUBSCRIBE ~390 KiB of distinct filters"),
    ("ws-ping", ws_ping, "ws", 256, "WebSocket ping flood, never reading the pongs"),
    ("password-burst", password_burst, "passwd", 512, "400 parallel wrong passwords, ~10 s"),
    ("password-burst/serial", password_burst_serial, "passwd", 512, "200 wrong passwords one at a time"),
    ("parallel-guess", parallel_guess, "passwd", 256, "200 simultaneous wrong passwords for alice"),
    ("offline-queue", offline_queue, "default", 256, "64 KiB QoS 1 into an offline 3.1.1 session"),
    ("offline-queue/v5", offline_queue_v5, "default", 256, "64 KiB QoS 1 into an offline 5.0 session"),
    ("slow-subscriber", slow_subscriber, "default", 256, "16 KiB QoS 0+1 flood to a non-reading subscriber"),
    ("conn-flood", conn_flood, "default", 256, "idle TCP connections from one address"),
    ("conn-flood/connect", conn_flood_connect, "default", 256, "CONNECT-and-idle connections from one address"),
    ("big-packets-slowloris", big_packets_slowloris, "default", 256, "1 000 half-sent 1 MiB PUBLISHes"),
    ("log-forgery", log_forgery, "default", 256, "newline + fake audit line in client id / user / will"),
    ("takeover", takeover, "default", 256, "5.0 session takeover loop: DISCONNECT 0x8E, delivery"),
    ("takeover/v311", takeover_v311, "default", 256, "3.1.1 session takeover loop"),
]
