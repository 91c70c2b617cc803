#!/usr/bin/env python3
"""Hostile-client measurements for Tollgate. See README.md in this directory.

    python3 bench/attacks/run.py --broker target/release/tollgate [--config FILE]
        [--only NAME[,NAME...]] [--scale 1.0] [--json] [--rss-cap-mib 2048] [--keep-logs DIR]

Starts the broker itself for each attack (a fresh one every time), runs the attack from this
machine while a separate process samples the broker's memory and runs a well-behaved client
from 127.0.0.2, then prints one line per attack.
"""

import argparse
import asyncio
import json
import os
import re
import resource
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import queue
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # leave no __pycache__ in the repository
sys.path.insert(0, HERE)
import attacks  # noqa: E402
import mqtt  # noqa: E402

ATTACK_BUDGET = 30.0  # seconds an attack may run before it is cancelled
MIN_WINDOW = 3.0      # seconds of good-client measurement at least, however short the attack
SETTLE = 3.0          # seconds between the end of an attack and the "after" RSS
WS_PORT = 1884
GOOD_MS = 100.0       # every good-client connect and round trip within this


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- configuration

SECTION = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.\-\"]+)\s*\]\]?\s*(#.*)?$")


def strip_sections(text, names=("listener", "authenticator")):
    """The configuration text without its [[listener]] / [[authenticator]] tables (and their
    subtables): the harness declares its own."""
    out, skipping = [], False
    for line in text.splitlines():
        m = SECTION.match(line)
        if m:
            head = m.group(1)
            skipping = any(head == n or head.startswith(n + ".") for n in names)
        if not skipping:
            out.append(line)
    return "\n".join(out) + "\n"


def first_tcp_listener(config_path):
    """(host, port, anonymous) of the first plain TCP listener of a configuration file."""
    if not config_path:
        return "127.0.0.1", 1883, True
    import tomllib
    with open(config_path, "rb") as f:
        cfg = tomllib.load(f)
    listeners = cfg.get("listener") or []
    if not listeners:
        return "127.0.0.1", 1883, True
    for ls in listeners:
        if "tls" not in ls and "websocket" not in ls:
            host, _, port = ls.get("bind", "127.0.0.1:1883").rpartition(":")
            host = host.strip("[]")
            if host in ("0.0.0.0", "::", ""):
                host = "127.0.0.1"
            return host, int(port), bool(ls.get("allow_anonymous", False))
    raise SystemExit("the configuration has no plain TCP listener for the harness to use")


class Configs:
    """The configuration files the attacks need, built once in the work directory."""

    def __init__(self, binary, user_config, workdir):
        self.binary = binary
        self.user_config = user_config
        self.workdir = workdir
        self.base = ""
        if user_config:
            with open(user_config) as f:
                self.base = strip_sections(f.read())
        self.alice_pw = "alice-" + secrets.token_hex(8)
        self.bob_pw = "bob-" + secrets.token_hex(8)
        self._made = {}

    def get(self, kind):
        """(path or None, host, port, good-client credentials)."""
        if kind in self._made:
            return self._made[kind]
        if kind == "default":
            host, port, anon = first_tcp_listener(self.user_config)
            if not anon:
                log("warning: the configured listener refuses anonymous clients; "
                    "the anonymous attacks will be refused")
            made = (self.user_config, host, port, (None, None))
        elif kind == "ws":
            path = os.path.join(self.workdir, "ws.toml")
            with open(path, "w") as f:
                f.write(self.base + f"""
[[listener]]
name = "tcp"
bind = "127.0.0.1:1883"
allow_anonymous = true

[[listener]]
name = "ws"
bind = "127.0.0.1:{WS_PORT}"
allow_anonymous = true
websocket = {{}}
""")
            made = (path, "127.0.0.1", 1883, (None, None))
        elif kind == "passwd":
            pwfile = os.path.join(self.workdir, "passwd")
            for args in (["-c", "-b", pwfile, "alice", self.alice_pw],
                         ["-b", pwfile, "bob", self.bob_pw]):
                p = subprocess.run([self.binary, "passwd", *args], capture_output=True,
                                   text=True, timeout=60)
                if p.returncode != 0:
                    raise SystemExit(f"tollgate passwd {args[:-1]} failed: {p.stderr.strip()}")
            path = os.path.join(self.workdir, "passwd.toml")
            with open(path, "w") as f:
                f.write(self.base + f"""
[[authenticator]]
name = "users"
[authenticator.password_file]
path = "{pwfile}"

[[listener]]
name = "tcp"
bind = "127.0.0.1:1883"
allow_anonymous = false
authenticators = ["users"]
""")
            made = (path, "127.0.0.1", 1883, ("bob", self.bob_pw))
        else:
            raise ValueError(kind)
        if made[0] and made[0] != self.user_config:
            p = subprocess.run([self.binary, "check-config", made[0]], capture_output=True,
                               text=True, timeout=30)
            if p.returncode != 0:
                raise SystemExit(f"generated {made[0]} is refused: {p.stderr.strip()}")
        self._made[kind] = made
        return made


# --------------------------------------------------------------------------- broker process

def port_open(host, port, timeout=0.2):
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            mqtt.set_linger0(s)
            return True
    except OSError:
        return False


def read_status(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                out[k] = v.strip()
    except OSError:
        return None
    return out


def kib(v):
    return int(v.split()[0]) if v else 0


class Broker:
    def __init__(self, binary, config, ports, workdir, name):
        self.binary, self.config, self.ports = binary, config, ports
        safe = name.replace("/", "_")
        self.stdout_path = os.path.join(workdir, f"{safe}.stdout")
        self.stderr_path = os.path.join(workdir, f"{safe}.stderr")
        self.proc = None

    def start(self):
        for host, port in self.ports:
            if port_open(host, port):
                raise SystemExit(f"{host}:{port} is already in use: stop what listens there first")
        cmd = [self.binary, "serve"] + (["--config", self.config] if self.config else [])
        env = {k: v for k, v in os.environ.items() if k != "RUST_LOG"}
        self._out = open(self.stdout_path, "wb")
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._out, stderr=self._err,
                                     stdin=subprocess.DEVNULL, env=env)
        end = time.monotonic() + 20
        for host, port in self.ports:
            while not port_open(host, port):
                if self.proc.poll() is not None:
                    raise SystemExit(f"the broker exited at start ({self.proc.returncode}): "
                                     f"{self.stderr_tail()}")
                if time.monotonic() > end:
                    self.stop()
                    raise SystemExit(f"the broker did not listen on {host}:{port} in 20 s")
                time.sleep(0.05)
        return self

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def fd_limit(self):
        try:
            with open(f"/proc/{self.pid}/limits") as f:
                for line in f:
                    if line.startswith("Max open files"):
                        return int(line.split()[3])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self):
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for f in (self._out, self._err):
            f.close()

    def exit_description(self):
        rc = self.proc.returncode
        if rc is None:
            return None
        if rc < 0:
            return f"killed by {signal.Signals(-rc).name}"
        return f"exit {rc}"

    def stderr_tail(self, n=4000):
        try:
            with open(self.stderr_path, "rb") as f:
                f.seek(0, 2)
                f.seek(max(0, f.tell() - n))
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def crash_reason(self):
        tail = self.stderr_tail()
        for pat in ("has overflowed its stack", "panicked at", "memory allocation of",
                    "fatal runtime error", "Too many open files"):
            for line in tail.splitlines():
                if pat in line:
                    return line.strip()[-160:]
        return None


class Monitor:
    """monitor.py as a child process: RSS sampler and good client."""

    def __init__(self, pid, host, port, creds, cap_mib, good=True):
        cmd = [sys.executable, "-u", os.path.join(HERE, "monitor.py"), "--pid", str(pid),
               "--host", host, "--port", str(port), "--cap-mib", str(cap_mib),
               "--bind", attacks.GOOD_BIND if host.startswith("127.") else ""]
        if creds[0] is not None:
            cmd += ["--username", creds[0], "--password", creds[1]]
        if not good:
            cmd.append("--no-good")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.strip())
        self.lines.put(None)

    def wait_for(self, word, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                line = self.lines.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                return None
            if line is None:
                return None
            if line == word or (word == "{" and line.startswith("{")):
                return line
        return None

    def command(self, cmd):
        try:
            self.proc.stdin.write(cmd + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass

    def finish(self):
        self.command("end")
        line = self.wait_for("{", 10)
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        return json.loads(line) if line else {}


# --------------------------------------------------------------------------- one attack

class Ctx:
    def __init__(self, broker, host, port, scale):
        self.broker = broker
        self.host, self.port = host, port
        self.ws_port = WS_PORT
        self.scale = scale
        self.counts = {}
        self.notes = []
        self.issues = []
        self.writers = set()
        self.stderr_path = broker.stderr_path

    def running(self):
        return self.broker.alive()

    def n(self, x):
        return max(1, int(x * self.scale))

    def dur(self, seconds):
        return min(22.0, max(1.0, seconds * self.scale))

    def close_all(self):
        for w in list(self.writers):
            attacks.abort(w)
        self.writers.clear()


async def run_attack_coro(ctx, fn):
    t0 = time.monotonic()
    try:
        await asyncio.wait_for(fn(ctx), ATTACK_BUDGET)
        # A short attack still gets a few seconds of good-client samples, with its
        # connections still open.
        left = MIN_WINDOW - (time.monotonic() - t0)
        if left > 0:
            await asyncio.sleep(left)
    except asyncio.TimeoutError:
        ctx.notes.append(f"cancelled after the {ATTACK_BUDGET:.0f} s budget")
    except (mqtt.Closed, ConnectionError) as e:
        ctx.notes.append(f"attacker connection ended: {type(e).__name__}")
    except Exception as e:  # an attack must never stop the run
        ctx.notes.append(f"attack error: {type(e).__name__}: {e}")
    finally:
        ctx.close_all()


def run_one(name, fn, kind, goal_mib, configs, args, workdir):
    path, host, port, creds = configs.get(kind)
    ports = [(host, port)] + ([("127.0.0.1", WS_PORT)] if kind == "ws" else [])
    broker = Broker(args.broker, path, ports, workdir, name).start()
    result = {"attack": name, "goal_rss_mib": goal_mib, "broker_pid": broker.pid,
              "config": path or "(embedded default)", "stderr": broker.stderr_path}
    monitor = Monitor(broker.pid, host, port, creds, args.rss_cap_mib)
    try:
        if monitor.wait_for("ready", 10) is None:
            log("  (monitor not ready in 10 s)")
        ctx = Ctx(broker, host, port, args.scale)
        fdlim = broker.fd_limit()
        t0 = time.monotonic()
        asyncio.run(run_attack_coro(ctx, fn))
        result["attack_s"] = round(time.monotonic() - t0, 1)
        monitor.command("stopgood")
        monitor.wait_for("goodstopped", 8)
        time.sleep(SETTLE)
        st = read_status(broker.pid) if broker.alive() else None
        if st is not None and "VmRSS" not in st:
            st = None  # killed, not yet reaped
        result["rss_after_mib"] = round(kib(st.get("VmRSS")) / 1024, 1) if st else None
        hwm_now = kib(st.get("VmHWM")) if st else 0
        m = monitor.finish()
    finally:
        if monitor.proc.poll() is None:
            monitor.proc.kill()
        broker.stop()
    result["peak_rss_mib"] = round(m.get("peak_rss_kib", 0) / 1024, 1)
    result["hwm_mib"] = round(max(m.get("hwm_kib", 0), hwm_now) / 1024, 1)
    result["peak_threads"] = m.get("peak_threads")
    result["peak_fds"] = m.get("peak_fds")
    result["broker_fd_limit"] = fdlim
    result["rss_timeline"] = m.get("timeline", [])
    if m.get("exceeded"):
        result["alive"] = "exceeded"
        ctx.notes.insert(0, f"RSS passed {args.rss_cap_mib} MiB at {m.get('exceeded_at')} s: broker killed")
    elif st is None:
        result["alive"] = False
        why = broker.crash_reason()
        ctx.notes.insert(0, f"broker died ({broker.exit_description()})" + (f": {why}" if why else ""))
    else:
        result["alive"] = True
    result["good"] = m.get("good", {})
    if (m.get("peak_threads") or 0) > 10:
        ctx.counts["broker_threads_peak"] = m["peak_threads"]
    if (m.get("peak_fds") or 0) > 1000:
        ctx.counts["broker_fds_peak"] = m["peak_fds"]
    result["counts"] = ctx.counts
    result["notes"] = ctx.notes
    result["issues"] = ctx.issues
    g = result["good"]
    fails = sum(g.get("failures", {}).values()) if g else None
    result["good_failures"] = fails
    ok = (result["alive"] is True and result["peak_rss_mib"] < goal_mib and fails == 0
          and (g.get("connect_ms", {}).get("max") or 1e9) <= GOOD_MS
          and (g.get("rtt_ms", {}).get("max") or 1e9) <= GOOD_MS and not ctx.issues)
    result["verdict"] = "PASS" if ok else "FAIL"
    return result


# --------------------------------------------------------------------------- output

def fmt_value(v):
    if isinstance(v, dict):
        return "{" + ",".join(f"{a}:{fmt_value(b)}" for a, b in v.items()) + "}"
    if isinstance(v, list) and len(v) > 6:
        return f"[{len(v)} items]"
    return str(v)


def fmt_counts(d):
    return " ".join(f"{k}={fmt_value(v)}" for k, v in d.items())


def ms(v):
    return "-" if v is None else (f"{v:.0f}" if v >= 10 else f"{v:.1f}")


def table(results):
    head = ["attack", "peak MiB", "HWM", "after", "alive", "conn p99/max ms",
            "rtt p99/max ms", "fail", "verdict", "notes"]
    rows = []
    for r in results:
        g = r.get("good") or {}
        c, t = g.get("connect_ms", {}), g.get("rtt_ms", {})
        f = g.get("failures", {})
        fail = str(sum(f.values())) + ("(" + ",".join(f"{k}:{v}" for k, v in f.items()) + ")" if f else "")
        notes = "; ".join(r["issues"] + r["notes"] + [fmt_counts(r["counts"])])
        rows.append([r["attack"], f"{r['peak_rss_mib']:.0f}", f"{r['hwm_mib']:.0f}",
                     "-" if r.get("rss_after_mib") is None else f"{r['rss_after_mib']:.0f}",
                     str(r["alive"]).lower() if r["alive"] in (True, False) else r["alive"],
                     f"{ms(c.get('p99'))}/{ms(c.get('max'))}", f"{ms(t.get('p99'))}/{ms(t.get('max'))}",
                     fail, r["verdict"], notes])
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head[:-1])]
    lines = [" | ".join(h.ljust(w) for h, w in zip(head[:-1], widths)) + " | notes"]
    lines.append("-+-".join("-" * w for w in widths) + "-+------")
    for row in rows:
        lines.append(" | ".join(v.ljust(w) for v, w in zip(row[:-1], widths)) + " | " + row[-1])
    return "\n".join(lines)


# --------------------------------------------------------------------------- main

def select(only):
    if not only:
        return attacks.ATTACKS
    wanted = [w.strip() for w in only.split(",") if w.strip()]
    chosen = [a for a in attacks.ATTACKS
              if any(a[0] == w or a[0].split("/")[0] == w for w in wanted)]
    if not chosen:
        names = ", ".join(a[0] for a in attacks.ATTACKS)
        raise SystemExit(f"no attack matches {only!r}; known: {names}")
    return chosen


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--broker", required=True, help="path to the tollgate binary")
    ap.add_argument("--config", help="base configuration (its listeners are used for the "
                    "plain attacks; its other sections are kept for the generated ones)")
    ap.add_argument("--only", help="attack name(s), comma-separated; a name without /variant "
                    "selects its variants too")
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies counts and durations")
    ap.add_argument("--json", action="store_true", help="print a JSON list on stdout (the table "
                    "then goes to stderr)")
    ap.add_argument("--rss-cap-mib", type=int, default=2048,
                    help="kill the broker when its RSS passes this (reported as exceeded)")
    ap.add_argument("--keep-logs", help="directory for broker logs and generated files "
                    "(default: a new temporary directory, kept)")
    ap.add_argument("--list", action="store_true", help="list the attacks and exit")
    args = ap.parse_args()

    if args.list:
        for name, _, kind, goal, desc in attacks.ATTACKS:
            print(f"{name:28} goal {goal} MiB  {desc}")
        return 0
    args.broker = os.path.abspath(args.broker)
    if not os.access(args.broker, os.X_OK):
        raise SystemExit(f"{args.broker} is not an executable")
    if args.config:
        args.config = os.path.abspath(args.config)
    # As many descriptors as allowed, for conn-flood; the brokers started from here inherit it.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    workdir = args.keep_logs or tempfile.mkdtemp(prefix="tollgate-attacks-")
    os.makedirs(workdir, exist_ok=True)
    log(f"broker {args.broker}; logs and generated files in {workdir}")
    configs = Configs(args.broker, args.config, workdir)
    results = []
    for name, fn, kind, goal, desc in select(args.only):
        log(f"== {name}: {desc}")
        r = run_one(name, fn, kind, goal, configs, args, workdir)
        g = r["good"] or {}
        log(f"   peak {r['peak_rss_mib']} MiB, after {r['rss_after_mib']} MiB, alive {r['alive']}, "
            f"good conn {g.get('connect_ms')}, rtt {g.get('rtt_ms')}, failures {g.get('failures')}")
        log(f"   {'; '.join(r['issues'] + r['notes'])} {fmt_counts(r['counts'])}")
        results.append(r)
    text = table(results)
    if args.json:
        print(text, file=sys.stderr)
        print(json.dumps(results, indent=1))
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
