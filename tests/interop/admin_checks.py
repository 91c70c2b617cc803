#!/usr/bin/env python3
"""Checks of Tollgate's admin API with real clients: paho-mqtt connects, plain HTTP (urllib)
lists, kicks, bans and revokes it and asks why it may publish, and prometheus-client's
OpenMetrics parser reads /metrics.

Usage: ADMIN_TOKEN=... READ_TOKEN=... python3 admin_checks.py --port MQTT_PORT --admin-port PORT

Prints one line per check ("ok   - name" or "FAIL - name: reason") and "N passed, M failed".
Every wait is bounded.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import traceback
import urllib.error
import urllib.request
import uuid

try:
    import paho.mqtt.client as mqtt
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
except ImportError as exc:  # pragma: no cover - environment problem
    print(f"FAIL - imports: {exc}")
    print("0 passed, 1 failed")
    sys.exit(2)

WAIT = 5.0
RUN = uuid.uuid4().hex[:6]


class CheckFailed(Exception):
    pass


def expect(cond: bool, msg: str) -> None:
    if not cond:
        raise CheckFailed(msg)


def http(base: str, method: str, path: str, token: str | None, body=None):
    """(status, headers (case-insensitive), body text) of one request; `body` is sent as JSON."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, method=method, data=data)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as answer:
            return answer.status, answer.headers, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read().decode()


def connack(host: str, port: int, client_id: str, version):
    """The CONNACK reason code (5.0) or return code (3.1.1) a paho client gets."""
    connected: queue.Queue = queue.Queue()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=version)
    client.on_connect = lambda c, u, f, rc, p=None: connected.put(rc)
    client.reconnect_delay_set(min_delay=60, max_delay=120)
    client.connect(host, port, keepalive=30)
    client.loop_start()
    try:
        return connected.get(timeout=WAIT).value
    finally:
        client.disconnect()
        client.loop_stop()


def connect(host: str, port: int, client_id: str, version):
    """A connected paho client and the queue its disconnect reason codes go to."""
    gone: queue.Queue = queue.Queue()
    connected: queue.Queue = queue.Queue()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=version)
    client.on_connect = lambda c, u, f, rc, p=None: connected.put(rc)
    client.on_disconnect = lambda c, u, f, rc, p=None: gone.put(rc)
    # paho's network thread reconnects after a disconnect: not within a check.
    client.reconnect_delay_set(min_delay=60, max_delay=120)
    client.connect(host, port, keepalive=30)
    client.loop_start()
    rc = connected.get(timeout=WAIT)
    expect(not rc.is_failure, f"CONNACK {rc}")
    return client, gone


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--admin-port", type=int, required=True)
    args = parser.parse_args()
    base = f"http://{args.host}:{args.admin_port}"
    admin, read = os.environ["ADMIN_TOKEN"], os.environ["READ_TOKEN"]
    passed = failed = 0

    def check(name, fn):
        nonlocal passed, failed
        try:
            fn()
            print(f"ok   - {name}", flush=True)
            passed += 1
        except Exception as e:  # noqa: BLE001 - a check reports whatever went wrong
            detail = str(e) if isinstance(e, CheckFailed) else traceback.format_exc(limit=2)
            print(f"FAIL - {name}: {detail.strip()}", flush=True)
            failed += 1

    def refused_without_a_valid_token():
        for token in (None, "not-a-token"):
            status, headers, body = http(base, "GET", "/api/v1/clients", token)
            expect(status == 401, f"status {status} with {token!r}: {body}")
            expect((headers.get("WWW-Authenticate") or "").startswith("Bearer"), str(dict(headers)))

    def metrics_parse_as_openmetrics():
        status, headers, body = http(base, "GET", "/metrics", read)
        expect(status == 200, f"status {status}: {body}")
        families = {f.name: f for f in text_string_to_metric_families(body)}
        for name, kind in [
            ("tollgate_connections", "gauge"),
            ("tollgate_connections_accepted", "counter"),
            ("tollgate_messages_received", "counter"),
            ("tollgate_received_bytes", "counter"),
            ("tollgate_payload_received_bytes", "counter"),
            ("tollgate_sessions", "gauge"),
            ("tollgate_uptime_seconds", "gauge"),
            ("tollgate_authentications", "counter"),
            ("tollgate_authentication_seconds", "histogram"),
            ("tollgate_listener_connections", "gauge"),
            ("tollgate_queued_deliveries", "gauge"),
            ("tollgate_overload", "counter"),
        ]:
            expect(name in families, f"no family {name} in {sorted(families)}")
            expect(families[name].type == kind, f"{name} is a {families[name].type}")
        accepted = families["tollgate_connections_accepted"].samples[0].value
        expect(accepted >= 1, f"connections accepted {accepted}")
        allowed = sum(s.value for s in families["tollgate_authentications"].samples
                      if s.name.endswith("_total") and s.labels.get("outcome") == "allow")
        expect(allowed >= 1, f"allowed authentications counted: {allowed}")
        by_qos = sorted(s.labels.get("qos") for s in families["tollgate_messages_received"].samples
                        if s.name.endswith("_total"))
        expect(by_qos == ["0", "1", "2"], f"messages received by QoS: {by_qos}")

    def listed_shown_and_kicked(version, label):
        def run():
            client_id = f"adm-{RUN}-{label}"
            client, gone = connect(args.host, args.port, client_id, version)
            try:
                status, _, body = http(base, "GET", f"/api/v1/clients?client_id=adm-{RUN}-{label}", read)
                expect(status == 200, f"listing: {status} {body}")
                listed = json.loads(body)
                expect([c["client_id"] for c in listed["data"]] == [client_id], body)
                status, _, body = http(base, "GET", f"/api/v1/clients/{client_id}", read)
                expect(status == 200 and json.loads(body)["principal"]["client_id"] == client_id, body)
                status, _, body = http(base, "DELETE", f"/api/v1/clients/{client_id}", read)
                expect(status == 403, f"a read token kicked: {status} {body}")
                status, _, body = http(base, "DELETE", f"/api/v1/clients/{client_id}", admin)
                expect(status == 204, f"kick: {status} {body}")
                rc = gone.get(timeout=WAIT)
                if version == mqtt.MQTTv5:
                    expect(rc.value == 0x98, f"disconnect reason {rc} (0x{rc.value:02x}), not 0x98")
                status, _, _ = http(base, "GET", f"/api/v1/clients/{client_id}", read)
                expect(status == 404, f"still listed after the kick: {status}")
            finally:
                client.loop_stop()
        return run

    def banned_disconnected_refused_and_lifted():
        client_id = f"ban-{RUN}"
        client, gone = connect(args.host, args.port, client_id, mqtt.MQTTv5)
        try:
            status, _, body = http(base, "POST", "/api/v1/bans", admin,
                                   {"kind": "client", "value": client_id, "reason": "interop"})
            expect(status == 201, f"ban: {status} {body}")
            expect(json.loads(body)["disconnected"] == 1, body)
            rc = gone.get(timeout=WAIT)
            expect(rc.value == 0x98, f"disconnect reason 0x{rc.value:02x}, not 0x98")
        finally:
            client.loop_stop()
        rc = connack(args.host, args.port, client_id, mqtt.MQTTv5)
        expect(rc == 0x8A, f"a banned 5.0 client got CONNACK 0x{rc:02x}, not 0x8A")
        # paho's VERSION2 callbacks give a 3.1.1 return code as the 5.0 reason code it maps
        # to: return code 5 (not authorized) arrives as 0x87.
        rc = connack(args.host, args.port, client_id, mqtt.MQTTv311)
        expect(rc == 0x87, f"a banned 3.1.1 client got 0x{rc:02x}, not return code 5 (0x87)")
        status, _, body = http(base, "GET", "/api/v1/bans?kind=client", read)
        expect(status == 200 and client_id in body, f"listing: {status} {body}")
        status, _, body = http(base, "DELETE", f"/api/v1/bans/client/{client_id}", admin)
        expect(status == 204, f"lift: {status} {body}")
        rc = connack(args.host, args.port, client_id, mqtt.MQTTv5)
        expect(rc == 0, f"CONNACK 0x{rc:02x} after the ban was lifted")

    def revoked_disconnected_and_withdrawn():
        client_id = f"rev-{RUN}"
        client, gone = connect(args.host, args.port, client_id, mqtt.MQTTv5)
        try:
            status, _, body = http(base, "POST", "/api/v1/revocations", admin,
                                   {"kind": "client", "value": client_id, "expires_in": 600})
            expect(status == 201, f"revoke: {status} {body}")
            rc = gone.get(timeout=WAIT)
            expect(rc.value == 0x87, f"disconnect reason 0x{rc.value:02x}, not 0x87")
        finally:
            client.loop_stop()
        rc = connack(args.host, args.port, client_id, mqtt.MQTTv5)
        expect(rc == 0x87, f"a revoked client got CONNACK 0x{rc:02x}")
        status, _, body = http(base, "DELETE", f"/api/v1/revocations/client/{client_id}", admin)
        expect(status == 204, f"withdraw: {status} {body}")

    def authorize_explains_a_connected_client():
        client_id = f"why-{RUN}"
        client, _ = connect(args.host, args.port, client_id, mqtt.MQTTv5)
        try:
            status, _, body = http(base, "POST", "/api/v1/authorize", read,
                                   {"client_id": client_id, "action": "publish", "topic": "x/y"})
            expect(status == 200, f"authorize: {status} {body}")
            answer = json.loads(body)
            expect(answer["source"] == "connected" and isinstance(answer["allowed"], bool), body)
        finally:
            client.disconnect()
            client.loop_stop()

    check("admin API refuses requests without a valid token (401)", refused_without_a_valid_token)
    check("admin API bans a paho client: DISCONNECT 0x98, CONNACK 0x8A (5.0) / 5 (3.1.1), lifted",
          banned_disconnected_refused_and_lifted)
    check("admin API revokes a paho client: DISCONNECT 0x87, refused, withdrawn",
          revoked_disconnected_and_withdrawn)
    check("admin API explains a connected paho client's publish", authorize_explains_a_connected_client)
    check("admin /metrics parsed by prometheus-client's OpenMetrics parser", metrics_parse_as_openmetrics)
    check("admin API lists, shows and kicks a paho MQTT 5 client (DISCONNECT 0x98)",
          listed_shown_and_kicked(mqtt.MQTTv5, "v5"))
    check("admin API lists, shows and kicks a paho MQTT 3.1.1 client",
          listed_shown_and_kicked(mqtt.MQTTv311, "v311"))
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
