"""The measuring side, run as its own process so the attacker's event loop (and its GIL)
cannot distort what it measures.

Two threads:
  * the RSS sampler reads /proc/PID/status every 20 ms (VmRSS, VmHWM, threads) and the number
    of open descriptors every 500 ms; if VmRSS passes the cap it SIGKILLs the broker and says
    so ("exceeded"), to keep the machine safe;
  * the good client: every 100 ms a fresh MQTT 3.1.1 connection from another source address
    (127.0.0.2), CONNECT, SUBSCRIBE (QoS 1) to its own topic, PUBLISH QoS 1 to it, wait for the
    message, DISCONNECT. Connect latency: connect() to CONNACK. Round trip: PUBLISH sent to
    PUBLISH received. Any step past 2 s is a timeout.

Driven through stdin, one command a line: `stopgood` ends the good client, `end` prints one
JSON object on stdout and exits. `ready` is printed once the good client has been served once
(or has failed for 5 s).
"""

import argparse
import json
import os
import signal
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in the repository
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mqtt  # noqa: E402

STEP_TIMEOUT = 2.0


def read_status(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:", "Threads:", "State:")):
                    k, v = line.split(":", 1)
                    out[k] = v.strip()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    if out.get("State", "").startswith(("Z", "X")):
        return None
    return out


def kib(v):
    return int(v.split()[0]) if v else 0


class Sampler(threading.Thread):
    def __init__(self, pid, cap_kib):
        super().__init__(daemon=True)
        self.pid = pid
        self.cap_kib = cap_kib
        self.stop = threading.Event()
        self.peak_rss = 0
        self.hwm = 0
        self.last_rss = 0
        self.peak_threads = 0
        self.peak_fds = 0
        self.samples = 0
        self.exceeded = False
        self.exceeded_at = None
        self.died_at = None
        self.timeline = []  # (seconds, MiB) every 0.5 s
        self.t0 = time.monotonic()

    def run(self):
        next_fd = 0.0
        next_tl = 0.0
        while not self.stop.is_set():
            now = time.monotonic()
            st = read_status(self.pid)
            if st is None:
                if self.died_at is None:
                    self.died_at = round(now - self.t0, 3)
                self.stop.wait(0.02)
                continue
            rss = kib(st.get("VmRSS"))
            self.samples += 1
            self.last_rss = rss
            self.peak_rss = max(self.peak_rss, rss)
            self.hwm = max(self.hwm, kib(st.get("VmHWM")))
            self.peak_threads = max(self.peak_threads, int(st.get("Threads", "0") or 0))
            if now >= next_tl:
                self.timeline.append((round(now - self.t0, 2), round(rss / 1024, 1)))
                next_tl = now + 0.5
            if now >= next_fd:
                try:
                    self.peak_fds = max(self.peak_fds, len(os.listdir(f"/proc/{self.pid}/fd")))
                except OSError:
                    pass
                next_fd = now + 0.5
            if self.cap_kib and rss > self.cap_kib and not self.exceeded:
                self.exceeded = True
                self.exceeded_at = round(now - self.t0, 3)
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.stop.wait(max(0.0, 0.02 - (time.monotonic() - now)))


class GoodClient(threading.Thread):
    def __init__(self, host, port, bind, username, password, interval=0.1):
        super().__init__(daemon=True)
        self.host, self.port, self.bind = host, port, bind
        self.username, self.password = username, password
        self.interval = interval
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.connect_ms = []
        self.rtt_ms = []
        self.attempts = 0
        self.ok = 0
        self.failures = {}
        self.first_errors = []
        self.t0 = time.monotonic()

    def fail(self, kind, detail):
        self.failures[kind] = self.failures.get(kind, 0) + 1
        if len(self.first_errors) < 5:
            self.first_errors.append(f"{kind}: {detail}")

    def one(self, n):
        cid = f"good-{os.getpid()}-{n}"
        topic = f"good/{os.getpid()}/{n}"
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if self.bind:
                sock.bind((self.bind, 0))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            t_start = time.monotonic()
            sock.settimeout(STEP_TIMEOUT)
            try:
                sock.connect((self.host, self.port))
            except ConnectionRefusedError as e:
                return self.fail("refused", f"tcp: {e}")
            except socket.timeout:
                return self.fail("timeout", "tcp connect")
            deadline = t_start + STEP_TIMEOUT
            sock.sendall(mqtt.connect(cid, mqtt.V311, clean=True, keepalive=30,
                                      username=self.username, password=self.password))
            while True:
                t, f, body = mqtt.recv_packet(sock, deadline)
                if t == mqtt.CONNACK:
                    break
            _, code = mqtt.parse_connack(body)
            t_connack = time.monotonic()
            if code != 0:
                return self.fail("refused", f"CONNACK {code}")
            self.connect_ms.append((t_connack - t_start) * 1000)
            deadline = time.monotonic() + STEP_TIMEOUT
            sock.sendall(mqtt.subscribe(1, [(topic, 1)]))
            while True:
                t, f, body = mqtt.recv_packet(sock, deadline)
                if t == mqtt.SUBACK:
                    break
            _, codes = mqtt.parse_suback(body)
            if not codes or codes[0] >= 0x80:
                return self.fail("refused", f"SUBACK {codes}")
            payload = b"good client %d" % n
            t_pub = time.monotonic()
            deadline = t_pub + STEP_TIMEOUT
            sock.sendall(mqtt.publish(topic, payload, qos=1, pid=2))
            got_msg = got_ack = False
            while not (got_msg and got_ack):
                t, f, body = mqtt.recv_packet(sock, deadline)
                if t == mqtt.PUBLISH:
                    tp, qos, pid, pl = mqtt.parse_publish(f, body)
                    if qos:
                        sock.sendall(mqtt.puback(pid))
                    if tp == topic.encode() and pl == payload:
                        self.rtt_ms.append((time.monotonic() - t_pub) * 1000)
                        got_msg = True
                elif t == mqtt.PUBACK:
                    got_ack = True
            self.ok += 1
            self.ready.set()
            # A clean goodbye: DISCONNECT, then wait (briefly) for the broker to close.
            try:
                sock.sendall(mqtt.disconnect())
                sock.shutdown(socket.SHUT_WR)
                end = time.monotonic() + 0.3
                while time.monotonic() < end:
                    sock.settimeout(max(0.01, end - time.monotonic()))
                    if not sock.recv(4096):
                        break
            except OSError:
                pass
        except socket.timeout:
            self.fail("timeout", "no answer within 2 s")
        except mqtt.Closed:
            self.fail("closed", "connection closed by the broker")
        except ConnectionRefusedError as e:
            self.fail("refused", str(e))
        except OSError as e:
            self.fail("error", str(e))
        finally:
            sock.close()

    def run(self):
        n = 0
        while not self.stop.is_set():
            start = time.monotonic()
            n += 1
            self.attempts += 1
            self.one(n)
            if time.monotonic() - self.t0 > 5:
                self.ready.set()
            self.stop.wait(max(0.0, self.interval - (time.monotonic() - start)))


def pct(values, p):
    if not values:
        return None
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(round(p / 100 * (len(s) - 1)))))
    return round(s[k], 2)


def summary(values):
    return {"n": len(values), "p50": pct(values, 50), "p99": pct(values, 99),
            "max": round(max(values), 2) if values else None}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=1883)
    ap.add_argument("--bind", default="127.0.0.2")
    ap.add_argument("--username")
    ap.add_argument("--password")
    ap.add_argument("--cap-mib", type=int, default=2048)
    ap.add_argument("--no-good", action="store_true")
    a = ap.parse_args()

    sampler = Sampler(a.pid, a.cap_mib * 1024)
    sampler.start()
    good = None
    if not a.no_good:
        good = GoodClient(a.host, a.port, a.bind or None, a.username,
                          a.password.encode() if a.password is not None else None)
        good.start()
        good.ready.wait(6)
    print("ready", flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "stopgood" and good:
            good.stop.set()
            good.join(2 * STEP_TIMEOUT + 1)
            print("goodstopped", flush=True)
        elif cmd == "end":
            break
    if good:
        good.stop.set()
        good.join(2 * STEP_TIMEOUT + 1)
    sampler.stop.set()
    sampler.join(1)
    out = {
        "peak_rss_kib": sampler.peak_rss, "hwm_kib": sampler.hwm, "last_rss_kib": sampler.last_rss,
        "peak_threads": sampler.peak_threads, "peak_fds": sampler.peak_fds,
        "samples": sampler.samples, "exceeded": sampler.exceeded,
        "exceeded_at": sampler.exceeded_at, "died_at": sampler.died_at,
        "timeline": sampler.timeline,
    }
    if good:
        out["good"] = {
            "attempts": good.attempts, "ok": good.ok,
            "connect_ms": summary(good.connect_ms), "rtt_ms": summary(good.rtt_ms),
            "failures": good.failures, "first_errors": good.first_errors,
        }
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
