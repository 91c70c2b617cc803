#!/usr/bin/env python3
"""Interop checks for an MQTT broker using the paho-mqtt (2.x) Python client.

Usage: python3 paho_checks.py --port PORT [--host 127.0.0.1] [--only SUBSTRING] [--budget SECONDS]

Runs every check for MQTT 3.1, 3.1.1 and 5.0 against a broker that must
already be listening (anonymous access allowed), prints one line per check
("ok   - name" or "FAIL - name: reason") and finally a line of the form
"N passed, M failed". Exits 0 only if nothing failed.

Every wait is bounded: a check that does not get what it expects within a few
seconds fails; it never hangs.
"""

from __future__ import annotations

import argparse
import os
import queue
import sys
import threading
import time
import traceback
import uuid

try:
    import paho.mqtt
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties
    from paho.mqtt.subscribeoptions import SubscribeOptions
except ImportError as exc:  # pragma: no cover - environment problem
    print(f"FAIL - import paho-mqtt: {exc}")
    print("0 passed, 1 failed")
    sys.exit(2)

WAIT = 5.0  # seconds to wait for anything that should happen
QUIET = 1.0  # seconds to wait to be sure something does NOT happen

PROTOCOLS = [
    ("v3.1", mqtt.MQTTv31),
    ("v3.1.1", mqtt.MQTTv311),
    ("v5", mqtt.MQTTv5),
]


class CheckFailed(Exception):
    pass


def expect(cond: bool, msg: str) -> None:
    if not cond:
        raise CheckFailed(msg)


_cid_counter = 0
_cid_lock = threading.Lock()
_RUN = uuid.uuid4().hex[:6]


def new_client_id(tag: str) -> str:
    """Client ids are kept <= 23 characters so MQTT 3.1 brokers accept them."""
    global _cid_counter
    with _cid_lock:
        _cid_counter += 1
        n = _cid_counter
    return f"tgp{_RUN}{tag[:4]}{n}"[:23]


def rc_value(rc) -> int:
    """ReasonCode (or int) -> int."""
    return rc.value if hasattr(rc, "value") else int(rc)


class Conn:
    """A connected paho client with thread-safe queues for what it receives."""

    def __init__(self, host: str, port: int, protocol: int, tag: str,
                 will: tuple | None = None):
        self.protocol = protocol
        self.messages: queue.Queue = queue.Queue()
        self._cv = threading.Condition()
        self._connack = None  # (reason_code, flags)
        self._subacks: dict[int, list] = {}
        self._unsubacks: dict[int, list] = {}
        self._pubacks: dict[int, int] = {}
        self.client_id = new_client_id(tag)
        kwargs = {}
        if protocol != mqtt.MQTTv5:
            kwargs["clean_session"] = True
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                        protocol=protocol, **kwargs)
        c.on_connect = self._on_connect
        c.on_subscribe = self._on_subscribe
        c.on_unsubscribe = self._on_unsubscribe
        c.on_message = self._on_message
        c.on_publish = self._on_publish
        if will is not None:
            c.will_set(*will)
        self.client = c
        connect_kwargs = {}
        if protocol == mqtt.MQTTv5:
            connect_kwargs["clean_start"] = True
        try:
            c.connect(host, port, keepalive=30, **connect_kwargs)
        except OSError as exc:
            raise CheckFailed(f"TCP connect to {host}:{port} failed: {exc}")
        c.loop_start()
        with self._cv:
            ok = self._cv.wait_for(lambda: self._connack is not None, WAIT)
        if not ok:
            self.close()
            raise CheckFailed(f"no CONNACK within {WAIT}s ({self.client_id})")
        rc, _flags = self._connack
        if rc_value(rc) != 0:
            self.close()
            raise CheckFailed(f"CONNACK refused: {rc}")

    # -- callbacks (paho network thread) --
    def _on_connect(self, client, userdata, flags, reason_code, properties):
        with self._cv:
            self._connack = (reason_code, flags)
            self._cv.notify_all()

    def _on_subscribe(self, client, userdata, mid, reason_code_list, properties):
        with self._cv:
            self._subacks[mid] = [rc_value(r) for r in reason_code_list]
            self._cv.notify_all()

    def _on_unsubscribe(self, client, userdata, mid, reason_code_list, properties):
        with self._cv:
            self._unsubacks[mid] = [rc_value(r) for r in reason_code_list]
            self._cv.notify_all()

    def _on_publish(self, client, userdata, mid, reason_code, properties):
        with self._cv:
            self._pubacks[mid] = rc_value(reason_code)
            self._cv.notify_all()

    def _on_message(self, client, userdata, message):
        self.messages.put(message)

    # -- operations --
    @property
    def connack_flags(self):
        return self._connack[1]

    def subscribe(self, topic: str, qos: int = 0, **v5opts) -> list[int]:
        """Subscribe and wait for SUBACK; returns the granted QoS / reason codes."""
        if v5opts:
            result, mid = self.client.subscribe(topic, options=SubscribeOptions(qos=qos, **v5opts))
        else:
            result, mid = self.client.subscribe(topic, qos)
        expect(result == mqtt.MQTT_ERR_SUCCESS, f"subscribe({topic!r}) not sent: {result}")
        with self._cv:
            ok = self._cv.wait_for(lambda: mid in self._subacks, WAIT)
            codes = self._subacks.get(mid)
        expect(ok, f"no SUBACK for {topic!r} within {WAIT}s")
        return codes

    def subscribe_ok(self, topic: str, qos: int = 0, **v5opts) -> None:
        codes = self.subscribe(topic, qos, **v5opts)
        expect(codes == [qos], f"SUBACK for {topic!r} at QoS {qos}: got {codes}")

    def unsubscribe(self, topic: str) -> list[int]:
        result, mid = self.client.unsubscribe(topic)
        expect(result == mqtt.MQTT_ERR_SUCCESS, f"unsubscribe({topic!r}) not sent: {result}")
        with self._cv:
            ok = self._cv.wait_for(lambda: mid in self._unsubacks, WAIT)
            codes = self._unsubacks.get(mid)
        expect(ok, f"no UNSUBACK for {topic!r} within {WAIT}s")
        return codes

    def publish(self, topic: str, payload, qos: int = 0, retain: bool = False,
                properties: Properties | None = None) -> int | None:
        """Publish and wait until the QoS flow completes (PUBACK / PUBCOMP).

        Returns the v5 PUBACK/PUBREC reason code when one is known.
        """
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        expect(info.rc == mqtt.MQTT_ERR_SUCCESS, f"publish to {topic!r} not sent: rc={info.rc}")
        try:
            info.wait_for_publish(timeout=WAIT)
        except Exception as exc:  # noqa: BLE001 - report any paho error
            raise CheckFailed(f"publish QoS {qos} to {topic!r}: {exc!r}")
        expect(info.is_published(),
               f"publish QoS {qos} to {topic!r}: flow not completed (no PUBACK/PUBCOMP) within {WAIT}s")
        with self._cv:
            self._cv.wait_for(lambda: info.mid in self._pubacks, WAIT if qos else 0.2)
            return self._pubacks.get(info.mid)

    def get(self, what: str, timeout: float = WAIT) -> mqtt.MQTTMessage:
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise CheckFailed(f"no message received for {what} within {timeout}s")

    def expect_nothing(self, what: str, timeout: float = QUIET) -> None:
        try:
            m = self.messages.get(timeout=timeout)
        except queue.Empty:
            return
        raise CheckFailed(f"{what}: unexpected message on {m.topic!r}: {m.payload!r}")

    def close(self, disconnect: bool = True) -> None:
        try:
            if disconnect:
                self.client.disconnect()
        except Exception:  # noqa: BLE001
            pass
        try:
            self.client.loop_stop()
        except Exception:  # noqa: BLE001
            pass


def expect_msg(m: mqtt.MQTTMessage, topic: str, payload: bytes, qos: int, retain: bool) -> None:
    got = (m.topic, m.payload, m.qos, bool(m.retain))
    want = (topic, payload, qos, retain)
    expect(got == want, f"message (topic, payload, qos, retain): got {got}, want {want}")


class Runner:
    def __init__(self, host: str, port: int, only: str | None, budget: float):
        self.deadline = time.monotonic() + budget
        self.budget = budget
        self.host = host
        self.port = port
        self.only = only
        self.passed = 0
        self.failed = 0
        self._open: list[Conn] = []

    def conn(self, protocol: int, tag: str, **kw) -> Conn:
        c = Conn(self.host, self.port, protocol, tag, **kw)
        self._open.append(c)
        return c

    def run(self, name: str, fn, *args) -> None:
        if self.only and self.only not in name:
            return
        start = time.monotonic()
        if start > self.deadline:
            self.failed += 1
            print(f"FAIL - {name}: not run: time budget of {self.budget:.0f}s used up "
                  "(see earlier failures)", flush=True)
            return
        try:
            fn(*args)
        except CheckFailed as exc:
            self.failed += 1
            print(f"FAIL - {name}: {exc}", flush=True)
        except Exception as exc:  # noqa: BLE001 - a crash is a failure
            self.failed += 1
            print(f"FAIL - {name}: unexpected error {exc!r}", flush=True)
            traceback.print_exc(file=sys.stdout)
        else:
            self.passed += 1
            print(f"ok   - {name} ({time.monotonic() - start:.2f}s)", flush=True)
        finally:
            for c in self._open:
                c.close()
            self._open.clear()


def topic_base(name: str) -> str:
    return f"tgp/{_RUN}/{name.replace(' ', '_').replace('.', '')}/{uuid.uuid4().hex[:8]}"


# ----------------------------------------------------------------- the checks

def check_connect(r: Runner, proto: int) -> None:
    c = r.conn(proto, "con")
    flags = c.connack_flags
    expect(not flags.session_present, "CONNACK session present set for a clean session")


def check_pubsub_qos(r: Runner, proto: int, qos: int) -> None:
    base = topic_base(f"qos{qos}")
    sub = r.conn(proto, "sub")
    sub.subscribe_ok(base + "/#", 2)
    pub = r.conn(proto, "pub")
    payloads = [f"qos{qos}-msg{i}".encode() for i in range(5)]
    for p in payloads:
        code = pub.publish(base + "/t", p, qos)
        if proto == mqtt.MQTTv5 and qos > 0:
            expect(code is not None and code < 0x80,
                   f"v5 {'PUBACK' if qos == 1 else 'PUBREC'} reason code: {code}")
    for p in payloads:
        m = sub.get(f"{p!r}")
        expect_msg(m, base + "/t", p, qos, False)
    sub.expect_nothing("after all messages", 0.2)


def check_qos_downgrade(r: Runner, proto: int) -> None:
    base = topic_base("downgrade")
    sub = r.conn(proto, "sub")
    sub.subscribe_ok(base + "/q1", 1)
    sub.subscribe_ok(base + "/q0", 0)
    pub = r.conn(proto, "pub")
    pub.publish(base + "/q1", b"two-to-one", 2)
    expect_msg(sub.get("QoS 2 on a QoS 1 subscription"), base + "/q1", b"two-to-one", 1, False)
    pub.publish(base + "/q0", b"one-to-zero", 1)
    expect_msg(sub.get("QoS 1 on a QoS 0 subscription"), base + "/q0", b"one-to-zero", 0, False)


def check_retained(r: Runner, proto: int) -> None:
    base = topic_base("retained")
    t = base + "/r"
    live = r.conn(proto, "live")
    live.subscribe_ok(t, 1)
    pub = r.conn(proto, "pub")
    pub.publish(t, b"retained-1", 1, retain=True)
    # a message delivered to an established subscription has RETAIN=0
    expect_msg(live.get("live delivery of a retained publish"), t, b"retained-1", 1, False)
    late = r.conn(proto, "late")
    late.subscribe_ok(t, 1)
    expect_msg(late.get("retained message on new subscription"), t, b"retained-1", 1, True)
    late.expect_nothing("only one retained message", 0.2)
    # replace it
    pub.publish(t, b"retained-2", 1, retain=True)
    expect_msg(live.get("live delivery of replacement"), t, b"retained-2", 1, False)
    late2 = r.conn(proto, "late")
    late2.subscribe_ok(base + "/+", 1)
    expect_msg(late2.get("replaced retained message"), t, b"retained-2", 1, True)
    late2.expect_nothing("only the replacement is retained", 0.2)
    # clear it with an empty retained payload
    pub.publish(t, b"", 1, retain=True)
    late3 = r.conn(proto, "late")
    late3.subscribe_ok(base + "/#", 1)
    late3.expect_nothing("retained message was cleared")


def check_unsubscribe(r: Runner, proto: int) -> None:
    base = topic_base("unsub")
    sub = r.conn(proto, "sub")
    sub.subscribe_ok(base + "/a", 1)
    sub.subscribe_ok(base + "/b", 1)
    codes = sub.unsubscribe(base + "/a")
    if proto == mqtt.MQTTv5:
        expect(codes == [0], f"v5 UNSUBACK reason codes: {codes}")
    pub = r.conn(proto, "pub")
    pub.publish(base + "/a", b"not-for-you", 1)
    pub.publish(base + "/b", b"still-subscribed", 1)
    expect_msg(sub.get("message on remaining subscription"), base + "/b", b"still-subscribed", 1, False)
    sub.expect_nothing("after unsubscribe", 0.3)


def check_wildcards(r: Runner, proto: int) -> None:
    base = topic_base("wild")
    sub = r.conn(proto, "sub")
    sub.subscribe_ok(base + "/+/x", 1)
    sub.subscribe_ok(base + "/h/#", 1)
    pub = r.conn(proto, "pub")
    sends = [
        (base + "/a/x", True),
        (base + "/a/y", False),
        (base + "/a/x/z", False),
        (base + "/h", True),  # "h/#" also matches the parent level
        (base + "/h/i/j", True),
        (base + "/b/x", True),
    ]
    for topic, _ in sends:
        pub.publish(topic, topic.encode(), 1)
    for topic, match in sends:
        if match:
            expect_msg(sub.get(f"wildcard match {topic!r}"), topic, topic.encode(), 1, False)
    sub.expect_nothing("non-matching topics", 0.2)


def check_cross_version(r: Runner, pub_proto: int, sub_proto: int) -> None:
    base = topic_base("cross")
    sub = r.conn(sub_proto, "sub")
    sub.subscribe_ok(base, 2)
    pub = r.conn(pub_proto, "pub")
    props = None
    if pub_proto == mqtt.MQTTv5:
        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = [("k", "v")]
    for q in (0, 1, 2):
        pub.publish(base, f"cross-{q}".encode(), q, properties=props)
        expect_msg(sub.get(f"cross-version QoS {q}"), base, f"cross-{q}".encode(), q, False)


def check_v5_user_properties(r: Runner) -> None:
    base = topic_base("userprops")
    sub = r.conn(mqtt.MQTTv5, "sub")
    sub.subscribe_ok(base, 1)
    pub = r.conn(mqtt.MQTTv5, "pub")
    props = Properties(PacketTypes.PUBLISH)
    want = [("a", "1"), ("b", "two"), ("a", "3"), ("unicode", "h\u00e9llo")]
    props.UserProperty = want
    pub.publish(base, b"with-user-props", 1, properties=props)
    m = sub.get("message with user properties")
    expect_msg(m, base, b"with-user-props", 1, False)
    got = list(getattr(m.properties, "UserProperty", []) or [])
    expect(got == want, f"user properties (order must be kept): got {got}, want {want}")


def check_v5_request_response(r: Runner) -> None:
    base = topic_base("reqresp")
    sub = r.conn(mqtt.MQTTv5, "sub")
    sub.subscribe_ok(base + "/req", 2)
    pub = r.conn(mqtt.MQTTv5, "pub")
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = base + "/resp"
    props.CorrelationData = b"\x00\x01corr-\xff"
    props.ContentType = "application/json"
    props.PayloadFormatIndicator = 1
    pub.publish(base + "/req", b'{"q":1}', 2, properties=props)
    m = sub.get("request message")
    expect_msg(m, base + "/req", b'{"q":1}', 2, False)
    p = m.properties
    expect(p is not None, "no properties on delivered message")
    got = (getattr(p, "ResponseTopic", None), getattr(p, "CorrelationData", None),
           getattr(p, "ContentType", None), getattr(p, "PayloadFormatIndicator", None))
    want = (base + "/resp", b"\x00\x01corr-\xff", "application/json", 1)
    expect(got == want,
           f"(response topic, correlation data, content type, payload format): got {got}, want {want}")
    # answer on the response topic, echoing the correlation data
    resp_sub = r.conn(mqtt.MQTTv5, "rsub")
    resp_sub.subscribe_ok(base + "/resp", 1)
    rprops = Properties(PacketTypes.PUBLISH)
    rprops.CorrelationData = p.CorrelationData
    sub.publish(p.ResponseTopic, b"answer", 1, properties=rprops)
    rm = resp_sub.get("response message")
    expect_msg(rm, base + "/resp", b"answer", 1, False)
    expect(getattr(rm.properties, "CorrelationData", None) == b"\x00\x01corr-\xff",
           "correlation data not passed through on the response")


def check_v5_message_expiry(r: Runner) -> None:
    base = topic_base("expiry")
    sub = r.conn(mqtt.MQTTv5, "sub")
    sub.subscribe_ok(base + "/live", 1)
    pub = r.conn(mqtt.MQTTv5, "pub")
    props = Properties(PacketTypes.PUBLISH)
    props.MessageExpiryInterval = 120
    props.UserProperty = [("kind", "expiring")]
    pub.publish(base + "/live", b"expires-later", 1, properties=props)
    m = sub.get("message with expiry interval")
    expect_msg(m, base + "/live", b"expires-later", 1, False)
    mei = getattr(m.properties, "MessageExpiryInterval", None)
    expect(mei is not None and 0 < mei <= 120,
           f"delivered message expiry interval should be in 1..120, got {mei}")
    expect(list(getattr(m.properties, "UserProperty", []) or []) == [("kind", "expiring")],
           f"user property lost on expiring message: {getattr(m.properties, 'UserProperty', None)}")
    # a retained message with an expiry is delivered with the (remaining) interval
    pub.publish(base + "/ret", b"retained-expiring", 1, retain=True, properties=props)
    late = r.conn(mqtt.MQTTv5, "late")
    late.subscribe_ok(base + "/ret", 1)
    lm = late.get("retained message with expiry interval")
    expect_msg(lm, base + "/ret", b"retained-expiring", 1, True)
    lmei = getattr(lm.properties, "MessageExpiryInterval", None)
    expect(lmei is not None and 0 < lmei <= 120,
           f"retained message expiry interval should be in 1..120, got {lmei}")
    pub.publish(base + "/ret", b"", 1, retain=True)  # clean up


def check_v5_retained_expires(r: Runner) -> None:
    base = topic_base("expired")
    pub = r.conn(mqtt.MQTTv5, "pub")
    props = Properties(PacketTypes.PUBLISH)
    props.MessageExpiryInterval = 1
    pub.publish(base, b"short-lived", 1, retain=True, properties=props)
    time.sleep(2.2)  # let the 1 s expiry pass (this is the behaviour under test)
    late = r.conn(mqtt.MQTTv5, "late")
    late.subscribe_ok(base, 1)
    late.expect_nothing("retained message past its expiry interval")


def check_v5_no_local(r: Runner) -> None:
    base = topic_base("nolocal")
    me = r.conn(mqtt.MQTTv5, "me")
    me.subscribe_ok(base, 1, noLocal=True)
    other = r.conn(mqtt.MQTTv5, "oth")
    me.publish(base, b"from-me", 1)
    other.publish(base, b"from-other", 1)
    expect_msg(me.get("message from another client"), base, b"from-other", 1, False)
    me.expect_nothing("no-local subscription got its own message", 0.3)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--only", help="run only the checks whose name contains this")
    ap.add_argument("--budget", type=float, default=60.0,
                    help="seconds after which the remaining checks fail without running")
    args = ap.parse_args()

    print(f"# paho-mqtt {paho.mqtt.__version__} against {args.host}:{args.port}", flush=True)
    r = Runner(args.host, args.port, args.only, args.budget)
    for name, proto in PROTOCOLS:
        r.run(f"paho {name} connect", check_connect, r, proto)
        for q in (0, 1, 2):
            r.run(f"paho {name} publish/subscribe QoS {q} with acks, in order", check_pubsub_qos, r, proto, q)
        r.run(f"paho {name} QoS downgrade to subscription QoS", check_qos_downgrade, r, proto)
        r.run(f"paho {name} retained flag, replace and clear", check_retained, r, proto)
        r.run(f"paho {name} unsubscribe", check_unsubscribe, r, proto)
        r.run(f"paho {name} wildcards + and #", check_wildcards, r, proto)
    r.run("paho v3.1 -> v5 cross-version delivery", check_cross_version, r, mqtt.MQTTv31, mqtt.MQTTv5)
    r.run("paho v5 -> v3.1.1 cross-version delivery", check_cross_version, r, mqtt.MQTTv5, mqtt.MQTTv311)
    r.run("paho v5 user properties passed through in order", check_v5_user_properties, r)
    r.run("paho v5 response topic / correlation data / content type", check_v5_request_response, r)
    r.run("paho v5 message expiry interval delivered", check_v5_message_expiry, r)
    r.run("paho v5 expired retained message not delivered", check_v5_retained_expires, r)
    r.run("paho v5 no-local subscription option", check_v5_no_local, r)

    print(f"{r.passed} passed, {r.failed} failed", flush=True)
    return 0 if r.failed == 0 and (r.passed > 0 or args.only) else 1


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    # paho's network threads are already stopped; exit without waiting on anything
    os._exit(code)
