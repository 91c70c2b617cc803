#!/usr/bin/env python3
"""The OAuth 2.0 device authorization grant relayed over MQTT (RFC 8628), end to end.

Usage: python3 device_flow.py --host H --port P --user alice

Two roles in one process, each with only its own channel:
  - the device (paho-mqtt, MQTT 3.1.1, no HTTP at all) connects anonymously to the broker's
    bootstrap listener, publishes to $tollgate/device/authorize/<its client id>, and gets
    its user code and verification URI over MQTT; later its access token, and its
    connection upgraded in place to the user's principal; it then uses the user's
    permissions on that same connection (subscribes to devices/<user>/# and gets what it
    publishes there);
  - the user (urllib, no MQTT) opens the verification URI in the OpenID provider's own
    pages (oidc-provider's device and development login pages), confirms the code, signs
    in as --user and consents, as a person on a phone would.

Prints one line per check ("ok   - name" or "FAIL - name: reason") and finally
"N passed, M failed". Every wait is bounded.
"""

from __future__ import annotations

import argparse
import html
import http.cookiejar
import json
import os
import queue
import re
import sys
import urllib.parse
import urllib.request

try:
    import paho.mqtt.client as mqtt
except ImportError as exc:  # pragma: no cover - environment problem
    print(f"FAIL - import paho-mqtt: {exc}")
    print("0 passed, 1 failed")
    sys.exit(2)

PASSED = 0
FAILED = 0


def report(ok: bool, name: str, why: str = "") -> None:
    global PASSED, FAILED
    if ok:
        PASSED += 1
        print(f"ok   - {name}", flush=True)
    else:
        FAILED += 1
        print(f"FAIL - {name}: {why}", flush=True)


class Device:
    """The device: an MQTT client and a queue of what it receives."""

    def __init__(self, host: str, port: int, client_id: str):
        self.client_id = client_id
        self.messages: queue.Queue = queue.Queue()
        self.subacks: queue.Queue = queue.Queue()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311
        )
        self.client.on_message = lambda c, u, m: self.messages.put((m.topic, bytes(m.payload)))
        self.client.on_subscribe = lambda c, u, mid, codes, p: self.subacks.put(
            [code.value if hasattr(code, "value") else int(code) for code in codes]
        )
        connected: queue.Queue = queue.Queue()
        self.client.on_connect = lambda c, u, f, rc, p: connected.put(rc)
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()
        rc = connected.get(timeout=10)
        if (rc.value if hasattr(rc, "value") else int(rc)) != 0:
            raise RuntimeError(f"CONNACK {rc}")

    def next_message(self, timeout: float) -> tuple[str, bytes]:
        return self.messages.get(timeout=timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class User:
    """A person approving the code in the provider's pages: follows each page's form."""

    def __init__(self):
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

    def open(self, url: str, form: dict | None = None) -> tuple[str, str]:
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        with self.opener.open(url, data=data, timeout=10) as response:
            return response.geturl(), response.read().decode("utf-8", "replace")

    def approve(self, verification_uri_complete: str, login: str) -> str:
        url, page = self.open(verification_uri_complete)
        for _ in range(8):
            if re.search(r"success", page, re.I) and "<form" not in page:
                return page
            form = re.search(r'<form[^>]*action="([^"]*)"[^>]*>(.*?)</form>', page, re.S | re.I)
            if form is None:
                # the device pages put the form apart from its submit button
                form = re.search(r'<form[^>]*action="([^"]*)"[^>]*>(.*)', page, re.S | re.I)
            if form is None:
                raise RuntimeError(f"no form on {url}: {page[:300]}")
            action = urllib.parse.urljoin(url, html.unescape(form.group(1)))
            fields = {}
            for tag in re.findall(r"<input[^>]*>", form.group(2), re.I):
                name = re.search(r'name="([^"]*)"', tag)
                value = re.search(r'value="([^"]*)"', tag)
                if name:
                    fields[name.group(1)] = html.unescape(value.group(1)) if value else ""
            if "login" in fields:
                fields["login"] = login
            if "password" in fields:
                fields["password"] = "any password (development interactions)"
            fields.pop("abort", None)
            url, page = self.open(action, fields)
        raise RuntimeError(f"no success page after 8 forms; last at {url}: {page[:300]}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", default="alice")
    args = parser.parse_args()
    client_id = f"flow{os.getpid()}"
    name = "device flow: an MQTT-only device gets its user code over MQTT"
    try:
        device = Device(args.host, args.port, client_id)
        device.client.publish(f"$tollgate/device/authorize/{client_id}", b"", qos=1)
        topic, payload = device.next_message(timeout=15)
        codes = json.loads(payload)
        ok = topic == f"$tollgate/device/{client_id}" and "user_code" in codes
        report(ok, name, f"{topic}: {payload[:200]!r}")
        if not ok:
            return 1
    except Exception as exc:  # noqa: BLE001 - any failure is the check's
        report(False, name, repr(exc))
        return 1

    name = f"device flow: the user approves {codes['user_code']} in the provider's pages"
    try:
        User().approve(codes.get("verification_uri_complete") or codes["verification_uri"], args.user)
        report(True, name)
    except Exception as exc:  # noqa: BLE001
        report(False, name, repr(exc))
        device.close()
        return 1

    name = "device flow: the device receives its token over MQTT and its connection is upgraded"
    try:
        # the broker polls every `interval` seconds (5 by default, more after slow_down)
        topic, payload = device.next_message(timeout=40)
        token = json.loads(payload)
        ok = "access_token" in token and token.get("upgraded") is True
        report(ok, name, f"{topic}: {payload[:200]!r}")
        if not ok:
            device.close()
            return 1
    except Exception as exc:  # noqa: BLE001
        report(False, name, repr(exc))
        device.close()
        return 1

    name = f"device flow: the same connection now has {args.user}'s permissions"
    try:
        mine = f"devices/{args.user}/{client_id}"
        device.client.subscribe(f"devices/{args.user}/#", qos=1)
        granted = device.subacks.get(timeout=10)
        device.client.publish(mine, b"hello from the device", qos=1)
        topic, payload = device.next_message(timeout=10)
        ok = granted and granted[0] < 128 and topic == mine and payload == b"hello from the device"
        report(ok, name, f"SUBACK {granted}, then {topic}: {payload!r}")
    except Exception as exc:  # noqa: BLE001
        report(False, name, repr(exc))
    device.close()
    return 0 if FAILED == 0 else 1


if __name__ == "__main__":
    rc = main()
    print(f"{PASSED} passed, {FAILED} failed")
    sys.exit(rc)
