#!/usr/bin/env node
// Interop checks for an MQTT broker using MQTT.js 5 (the npm package `mqtt`) over WebSocket
// and secure WebSocket, plus delivery between WebSocket and plain TCP clients.
//
// Usage:
//   node mqttjs_checks.mjs --ws-port P --wss-port P --ca ca.pem [--tcp-port P]
//        [--host 127.0.0.1] [--path /mqtt] [--only SUBSTRING] [--budget SECONDS]
//        [--skip-path-check]
//
// The broker must already be listening: MQTT over WebSocket on ws://HOST:WS_PORT/PATH and over
// TLS on wss://HOST:WSS_PORT/PATH with a server certificate signed by the CA in --ca (its
// subject alternative names must include HOST), and, with --tcp-port, plain MQTT on
// HOST:TCP_PORT; all with anonymous access. With --skip-path-check the check that a WebSocket
// upgrade request for another path is answered with 404 is not run (Mosquitto serves every
// path).
//
// Prints one line per check ("ok   - name" or "FAIL - name: reason") and finally
// "N passed, M failed"; exits 0 only if nothing failed. Every wait is bounded: connecting,
// acknowledgements and deliveries time out after a few seconds, checks still waiting when the
// time budget is used up fail without running, and a watchdog ends the process if anything
// hangs regardless.

import { readFileSync } from 'node:fs';
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';

const WAIT = 5000; // ms to wait for anything that should happen
const QUIET = 1000; // ms to wait to be sure something does NOT happen

const { values: args } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    'ws-port': { type: 'string' },
    'wss-port': { type: 'string' },
    'tcp-port': { type: 'string' },
    path: { type: 'string', default: '/mqtt' },
    ca: { type: 'string' },
    only: { type: 'string' },
    budget: { type: 'string', default: '60' },
    'skip-path-check': { type: 'boolean', default: false },
  },
});
if (!args['ws-port'] || !args['wss-port'] || !args.ca) {
  console.error('usage: node mqttjs_checks.mjs --ws-port P --wss-port P --ca ca.pem [--tcp-port P] [--only S] [--budget S]');
  process.exit(2);
}
const HOST = args.host;
const CA = readFileSync(args.ca);
const BUDGET_MS = Number(args.budget) * 1000;
const RUN = randomBytes(3).toString('hex');
const mqttVersion = JSON.parse(readFileSync(new URL('./node_modules/mqtt/package.json', import.meta.url))).version;

// Whatever happens, the process ends: the budget plus enough for the check running then.
const watchdog = setTimeout(() => {
  console.log(`FAIL - mqtt.js checks: watchdog: still running ${BUDGET_MS / 1000 + 30}s after the start`);
  console.log(`${passed} passed, ${failed + 1} failed`);
  process.exit(1);
}, BUDGET_MS + 30000);
watchdog.unref();

class CheckFailed extends Error {}
function expect(cond, msg) {
  if (!cond) throw new CheckFailed(msg);
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new CheckFailed(`${what}: nothing within ${ms / 1000}s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

let cidCounter = 0;
const newClientId = (tag) => `tgj${RUN}${tag.slice(0, 4)}${++cidCounter}`.slice(0, 23);
const topicBase = (name) => `tgj/${RUN}/${name}/${randomBytes(4).toString('hex')}`;

const URLS = {
  ws: () => `ws://${HOST}:${args['ws-port']}${args.path}`,
  wss: () => `wss://${HOST}:${args['wss-port']}${args.path}`,
  tcp: () => `mqtt://${HOST}:${args['tcp-port']}`,
};

/** A connected MQTT.js client with a queue of the messages it receives. */
class Conn {
  constructor(client, connack) {
    this.client = client;
    this.connack = connack;
    this.queue = [];
    this.waiters = [];
    client.on('message', (topic, payload, packet) => {
      const m = { topic, payload: Buffer.from(payload), qos: packet.qos, retain: packet.retain, properties: packet.properties || {} };
      const w = this.waiters.shift();
      if (w) w(m);
      else this.queue.push(m);
    });
  }

  /** The next message, or a failure after `ms`. */
  next(what, ms = WAIT) {
    if (this.queue.length) return Promise.resolve(this.queue.shift());
    let resolve;
    const p = new Promise((r) => { resolve = r; });
    this.waiters.push(resolve);
    return withTimeout(p, ms, `no message for ${what}`).catch((e) => {
      const i = this.waiters.indexOf(resolve);
      if (i >= 0) this.waiters.splice(i, 1);
      throw e;
    });
  }

  async nothing(what, ms = QUIET) {
    const m = await this.next(what, ms).catch(() => null);
    expect(m === null, `${what}: unexpected message on ${JSON.stringify(m?.topic)}: ${JSON.stringify(m?.payload.toString())}`);
  }

  async subscribe(topic, qos) {
    const granted = await withTimeout(this.client.subscribeAsync(topic, { qos }), WAIT, `SUBACK for ${topic}`);
    const codes = granted.map((g) => g.qos);
    expect(codes.length === 1 && codes[0] === qos, `SUBACK for ${topic} at QoS ${qos}: got ${JSON.stringify(codes)}`);
  }

  /** Publishes and waits until the QoS flow is complete (PUBACK, or PUBREC/PUBREL/PUBCOMP). */
  async publish(topic, payload, qos, opts = {}) {
    try {
      await withTimeout(this.client.publishAsync(topic, payload, { qos, ...opts }), WAIT, `publish QoS ${qos} to ${topic} (acknowledgement)`);
    } catch (e) {
      if (e instanceof CheckFailed) throw e;
      throw new CheckFailed(`publish QoS ${qos} to ${topic}: ${e.message}`);
    }
  }

  async close() {
    if (this.client.disconnected || !this.client.connected) {
      this.client.end(true);
      return;
    }
    await withTimeout(this.client.endAsync(), 2000, 'DISCONNECT').catch(() => this.client.end(true));
  }
}

const open = [];

/** Connects; resolves with a Conn once the CONNACK accepted the connection. */
function connect(transport, protocolVersion, tag, extra = {}) {
  const url = URLS[transport]();
  const opts = {
    clientId: newClientId(tag),
    protocolVersion,
    clean: true,
    keepalive: 30,
    connectTimeout: WAIT,
    reconnectPeriod: 0,
    ...extra,
  };
  if (transport === 'wss') Object.assign(opts, { ca: CA, rejectUnauthorized: true });
  const client = mqtt.connect(url, opts);
  // errors after the CONNACK (a dropped connection, say) are noticed through missing
  // acknowledgements or messages; an 'error' without a listener would end the process
  client.on('error', () => {});
  return new Promise((resolve, reject) => {
    let settled = false;
    const done = (err, connack) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) {
        client.end(true);
        reject(new CheckFailed(`connect to ${url} (MQTT ${protocolVersion === 5 ? '5' : '3.1.1'}): ${err}`));
      } else {
        const c = new Conn(client, connack);
        open.push(c);
        resolve(c);
      }
    };
    const timer = setTimeout(() => done(`no CONNACK within ${WAIT / 1000}s`), WAIT + 500);
    client.once('connect', (connack) => done(null, connack));
    client.once('error', (e) => done(e.message || String(e)));
    client.once('close', () => done('connection closed before a CONNACK'));
  });
}

function expectMsg(m, topic, payload, qos, retain) {
  const got = [m.topic, m.payload.toString(), m.qos, Boolean(m.retain)];
  const want = [topic, payload.toString(), qos, retain];
  expect(JSON.stringify(got) === JSON.stringify(want),
    `message [topic, payload, qos, retain]: got ${JSON.stringify(got).slice(0, 300)}, want ${JSON.stringify(want).slice(0, 300)}`);
}

let passed = 0;
let failed = 0;
const start = Date.now();

async function run(name, fn) {
  if (args.only && !name.includes(args.only)) return;
  if (Date.now() - start > BUDGET_MS) {
    failed++;
    console.log(`FAIL - ${name}: not run: time budget of ${BUDGET_MS / 1000}s used up (see earlier failures)`);
    return;
  }
  const t0 = Date.now();
  try {
    // a check gets at most 20 s, whatever it waits for
    await withTimeout(fn(), 20000, 'whole check');
    passed++;
    console.log(`ok   - ${name} (${((Date.now() - t0) / 1000).toFixed(2)}s)`);
  } catch (e) {
    failed++;
    const why = e instanceof CheckFailed ? e.message : `unexpected error ${e && e.stack ? e.stack : e}`;
    console.log(`FAIL - ${name}: ${why}`);
  } finally {
    const conns = open.splice(0);
    await Promise.all(conns.map((c) => c.close()));
  }
}

// ------------------------------------------------------------------ the checks

async function checkConnect(transport, v) {
  const c = await connect(transport, v, 'con');
  expect(c.connack.sessionPresent === false, `CONNACK session present: ${c.connack.sessionPresent}`);
  const code = v === 5 ? c.connack.reasonCode : c.connack.returnCode;
  expect(!code, `CONNACK code ${code}`);
}

async function checkPubSub(transport, v, qos) {
  const base = topicBase(`${transport}-v${v}-q${qos}`);
  const sub = await connect(transport, v, 'sub');
  await sub.subscribe(`${base}/#`, 2);
  const pub = await connect(transport, v, 'pub');
  const payloads = [0, 1, 2, 3].map((i) => `${transport} v${v} qos${qos} msg${i}`);
  for (const p of payloads) await pub.publish(`${base}/t`, p, qos);
  for (const p of payloads) expectMsg(await sub.next(p), `${base}/t`, p, qos, false);
  await sub.nothing('after all messages', 200);
}

async function checkRetained(transport, v) {
  const base = topicBase(`${transport}-retained-v${v}`);
  const t = `${base}/state`;
  const live = await connect(transport, v, 'live');
  await live.subscribe(t, 1);
  const pub = await connect(transport, v, 'pub');
  await pub.publish(t, 'retained-1', 1, { retain: true });
  // a message delivered to an existing subscription has RETAIN=0
  expectMsg(await live.next('live delivery of a retained publish'), t, 'retained-1', 1, false);
  const late = await connect(transport, v, 'late');
  await late.subscribe(`${base}/+`, 2);
  expectMsg(await late.next('retained message on a new subscription'), t, 'retained-1', 1, true);
  await late.nothing('only one retained message', 200);
  // replace, then clear with an empty retained message
  await pub.publish(t, 'retained-2', 2, { retain: true });
  expectMsg(await live.next('live delivery of the replacement'), t, 'retained-2', 1, false);
  const late2 = await connect(transport, v, 'late');
  await late2.subscribe(t, 2);
  expectMsg(await late2.next('replaced retained message'), t, 'retained-2', 2, true);
  await pub.publish(t, '', 1, { retain: true });
  const late3 = await connect(transport, v, 'late');
  await late3.subscribe(`${base}/#`, 1);
  await late3.nothing('retained message was cleared');
}

async function checkV5Properties(transport) {
  const base = topicBase(`${transport}-props`);
  const sub = await connect(transport, 5, 'sub');
  await sub.subscribe(base, 1);
  const pub = await connect(transport, 5, 'pub');
  const properties = {
    userProperties: { a: ['1', '3'], b: 'two' },
    contentType: 'application/json',
    responseTopic: `${base}/reply`,
    correlationData: Buffer.from([0, 1, 0xff]),
    messageExpiryInterval: 120,
  };
  await pub.publish(base, '{"x":1}', 1, { properties });
  const m = await sub.next('message with v5 properties');
  expectMsg(m, base, '{"x":1}', 1, false);
  const p = m.properties;
  const got = {
    user: p.userProperties,
    contentType: p.contentType,
    responseTopic: p.responseTopic,
    correlationData: p.correlationData ? Buffer.from(p.correlationData).toString('hex') : undefined,
  };
  const want = { user: { a: ['1', '3'], b: 'two' }, contentType: 'application/json', responseTopic: `${base}/reply`, correlationData: '0001ff' };
  expect(JSON.stringify(got) === JSON.stringify(want), `properties: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
  expect(p.messageExpiryInterval > 0 && p.messageExpiryInterval <= 120,
    `message expiry interval should be in 1..120, got ${p.messageExpiryInterval}`);
}

async function checkLarge(transport, v) {
  const base = topicBase(`${transport}-large`);
  const sub = await connect(transport, v, 'sub');
  await sub.subscribe(base, 1);
  const pub = await connect(transport, v, 'pub');
  const payload = randomBytes(96 * 1024).toString('base64'); // 128 KiB, many WebSocket frames' worth
  await pub.publish(base, payload, 1);
  const m = await sub.next('a 128 KiB message');
  expect(m.payload.length === payload.length, `payload length ${m.payload.length}, want ${payload.length}`);
  expectMsg(m, base, payload, 1, false);
}

async function checkWill(transport, v) {
  const base = topicBase(`${transport}-will`);
  const sub = await connect(transport, v, 'sub');
  await sub.subscribe(`${base}/status`, 1);
  const dying = await connect(transport, v, 'will', { will: { topic: `${base}/status`, payload: Buffer.from('gone'), qos: 1, retain: false } });
  // end(true): the connection is dropped without a DISCONNECT packet
  dying.client.end(true);
  expectMsg(await sub.next('the will message', WAIT), `${base}/status`, 'gone', 1, false);
}

async function checkCross(from, fromV, to, toV) {
  const base = topicBase(`cross-${from}-${to}`);
  const sub = await connect(to, toV, 'sub');
  await sub.subscribe(`${base}/+`, 2);
  const pub = await connect(from, fromV, 'pub');
  for (const q of [0, 1, 2]) {
    await pub.publish(`${base}/m`, `from ${from} qos${q}`, q);
    expectMsg(await sub.next(`QoS ${q} from ${from}`), `${base}/m`, `from ${from} qos${q}`, q, false);
  }
}

/** A bare WebSocket upgrade request for `path`; resolves with the HTTP status and headers. */
function upgrade(path) {
  return withTimeout(new Promise((resolve, reject) => {
    const req = http.request({
      host: HOST,
      port: Number(args['ws-port']),
      path,
      headers: {
        Connection: 'Upgrade',
        Upgrade: 'websocket',
        'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
        'Sec-WebSocket-Protocol': 'mqtt',
      },
    });
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode, headers: res.headers });
    });
    req.on('response', (res) => {
      res.resume();
      resolve({ status: res.statusCode, headers: res.headers });
    });
    req.on('error', reject);
    req.end();
  }), WAIT, `answer to a WebSocket upgrade request for ${path}`);
}

async function checkUpgradePath() {
  const ok = await upgrade(args.path);
  expect(ok.status === 101, `upgrade request for ${args.path}: HTTP ${ok.status}, want 101`);
  // RFC 6455 4.2.2: the accept key for the sample nonce of section 1.3
  expect(ok.headers['sec-websocket-accept'] === 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=',
    `Sec-WebSocket-Accept: ${ok.headers['sec-websocket-accept']}`);
  expect(ok.headers['sec-websocket-protocol'] === 'mqtt', `Sec-WebSocket-Protocol: ${ok.headers['sec-websocket-protocol']}`);
  const other = await upgrade('/not-mqtt');
  expect(other.status === 404, `upgrade request for /not-mqtt: HTTP ${other.status}, want 404`);
}

async function main() {
  console.log(`# mqtt.js ${mqttVersion} (node ${process.version}) against ws://${HOST}:${args['ws-port']}, wss://${HOST}:${args['wss-port']}`
    + (args['tcp-port'] ? `, mqtt://${HOST}:${args['tcp-port']}` : ''));
  for (const transport of ['ws', 'wss']) {
    for (const v of [4, 5]) {
      const name = `mqtt.js ${transport} MQTT ${v === 5 ? '5' : '3.1.1'}`;
      await run(`${name} connect${transport === 'wss' ? ' (server certificate verified against the CA)' : ''}`, () => checkConnect(transport, v));
      for (const q of [0, 1, 2]) {
        await run(`${name} publish/subscribe QoS ${q}, payloads in order`, () => checkPubSub(transport, v, q));
      }
      await run(`${name} retained: flag, replace, clear`, () => checkRetained(transport, v));
    }
    await run(`mqtt.js ${transport} MQTT 5 properties passed through`, () => checkV5Properties(transport));
    await run(`mqtt.js ${transport} MQTT 3.1.1 128 KiB message`, () => checkLarge(transport, 4));
  }
  await run('mqtt.js ws MQTT 5 will published when the connection drops without DISCONNECT', () => checkWill('ws', 5));
  await run('mqtt.js wss MQTT 3.1.1 will published when the connection drops without DISCONNECT', () => checkWill('wss', 4));
  if (args['tcp-port']) {
    await run('mqtt.js ws MQTT 5 -> tcp MQTT 3.1.1 delivery', () => checkCross('ws', 5, 'tcp', 4));
    await run('mqtt.js tcp MQTT 5 -> wss MQTT 5 delivery', () => checkCross('tcp', 5, 'wss', 5));
    await run('mqtt.js wss MQTT 3.1.1 -> ws MQTT 5 delivery', () => checkCross('wss', 4, 'ws', 5));
  }
  const pathCheck = `ws upgrade: ${args.path} answered with 101 and subprotocol mqtt, another path with 404`;
  if (!args['skip-path-check']) {
    await run(pathCheck, () => checkUpgradePath());
  } else if (!args.only || pathCheck.includes(args.only)) {
    console.log(`# skip - ${pathCheck} (--skip-path-check)`);
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed === 0 && (passed > 0 || args.only) ? 0 : 1);
}

main().catch((e) => {
  console.log(`FAIL - mqtt.js checks: crashed: ${e && e.stack ? e.stack : e}`);
  console.log(`${passed} passed, ${failed + 1} failed`);
  process.exit(1);
});
