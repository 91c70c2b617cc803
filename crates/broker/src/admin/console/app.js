// The Tollgate console: a page over the admin API and nothing else. The token lives in this
// tab's sessionStorage and goes in the Authorization header of each request (no cookie, so
// no request can be forged from another site). Every text from the broker is put in the page
// with textContent, never as HTML.
"use strict";

const TOKEN_KEY = "tollgate-admin-token";
const SAMPLE_MS = 5000;
const HISTORY = 36; // three minutes of samples
const MAX_EVENTS = 200;

let page = null;
let overviewTimer = null;
let eventsAbort = null;
let samples = [];
let shownClient = null;

const $ = (id) => document.getElementById(id);

function status(text) {
  $("status").textContent = text || "";
}

/** A request to the admin API; the parsed JSON (or text) of a success, else an Error. */
async function api(method, path, body) {
  const headers = { Authorization: "Bearer " + sessionStorage.getItem(TOKEN_KEY) };
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const answer = await fetch(path, init);
  if (answer.status === 401) {
    signOut("The token was refused: sign in again.");
    throw new Error("not signed in");
  }
  const text = await answer.text();
  if (!answer.ok) {
    let message = text;
    try { message = JSON.parse(text).error || text; } catch (_) { /* not JSON */ }
    throw new Error(answer.status + ": " + message);
  }
  if (!text) return null;
  return (answer.headers.get("Content-Type") || "").includes("json") ? JSON.parse(text) : text;
}

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "–" : String(text);
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function clear(element) {
  while (element.firstChild) element.removeChild(element.firstChild);
}

function when(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleString() : "never";
}

// ---- pages

function show(name) {
  page = name;
  for (const section of document.querySelectorAll("main > section")) {
    section.hidden = section.id !== "page-" + name;
  }
  for (const button of document.querySelectorAll("nav button[data-page]")) {
    if (button.dataset.page === name) button.setAttribute("aria-current", "page");
    else button.removeAttribute("aria-current");
  }
  status("");
  if (name !== "overview" && overviewTimer) { clearInterval(overviewTimer); overviewTimer = null; }
  if (name !== "events" && eventsAbort) { eventsAbort.abort(); eventsAbort = null; }
  if (name === "overview") startOverview();
  if (name === "clients") loadClients().catch((e) => status(e.message));
  if (name === "events") watchEvents();
  if (name === "bans") loadBans().catch((e) => status(e.message));
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  $("nav").hidden = true;
  show("signin");
  status(message || "");
}

async function signIn(event) {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
  $("token").value = "";
  try {
    await api("GET", "/api/v1/clients?limit=1");
  } catch (e) {
    if (e.message !== "not signed in") signOut(e.message);
    return;
  }
  $("nav").hidden = false;
  show("overview");
}

// ---- overview: /metrics sampled every 5 s

function parseMetrics(text) {
  const sums = { connections: 0, received: 0, sent: 0, failures: 0, denials: 0, sessions: 0 };
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const space = line.lastIndexOf(" ");
    const series = line.slice(0, space);
    const value = Number(line.slice(space + 1));
    const name = series.split("{")[0];
    if (name === "tollgate_connections") sums.connections = value;
    else if (name === "tollgate_sessions") sums.sessions = value;
    else if (name === "tollgate_messages_received_total") sums.received += value;
    else if (name === "tollgate_messages_sent_total") sums.sent += value;
    else if (name === "tollgate_authorization_denials_total") sums.denials += value;
    else if (name === "tollgate_authentications_total" && !series.includes('outcome="allow"')) sums.failures += value;
  }
  return sums;
}

async function sample() {
  const text = await api("GET", "/metrics");
  const now = parseMetrics(text);
  now.at = Date.now();
  samples.push(now);
  if (samples.length > HISTORY + 1) samples.shift();
  const figures = $("overview-now");
  clear(figures);
  for (const [label, value] of [["Connections", now.connections], ["Sessions", now.sessions],
    ["Messages received", now.received], ["Messages sent", now.sent],
    ["Login failures", now.failures], ["Denials", now.denials]]) {
    const box = document.createElement("div");
    const dt = document.createElement("dt");
    dt.textContent = label;
    const dd = document.createElement("dd");
    dd.textContent = String(value);
    box.append(dt, dd);
    figures.appendChild(box);
  }
  drawCharts();
  const body = $("overview-history").tBodies[0];
  clear(body);
  for (let i = samples.length - 1; i > 0; i--) {
    const a = samples[i - 1], b = samples[i];
    const seconds = (b.at - a.at) / 1000 || 1;
    const row = body.insertRow();
    cell(row, new Date(b.at).toLocaleTimeString());
    cell(row, b.connections);
    cell(row, ((b.received - a.received) / seconds).toFixed(1));
    cell(row, ((b.sent - a.sent) / seconds).toFixed(1));
    cell(row, b.failures - a.failures);
    cell(row, b.denials - a.denials);
  }
}

// One series per chart: a value per sample (connections) or per interval (rates, counts).
const CHARTS = [
  ["chart-connections", "Connections", (a, b) => b.connections],
  ["chart-in", "Messages in per second", (a, b, s) => (b.received - a.received) / s],
  ["chart-out", "Messages out per second", (a, b, s) => (b.sent - a.sent) / s],
  ["chart-failures", "Login failures per interval", (a, b) => b.failures - a.failures],
  ["chart-denials", "Denials per interval", (a, b) => b.denials - a.denials],
];
const SVG = "http://www.w3.org/2000/svg";
const CHART_W = 300, CHART_H = 60;

function drawCharts() {
  for (const [id, label, of] of CHARTS) {
    const values = [];
    for (let i = 1; i < samples.length; i++) {
      const seconds = (samples[i].at - samples[i - 1].at) / 1000 || 1;
      values.push(Math.max(0, of(samples[i - 1], samples[i], seconds)));
    }
    const svg = $(id);
    clear(svg);
    const top = Math.max(1, ...values);
    const last = values.length ? values[values.length - 1] : 0;
    const shown = Number.isInteger(last) ? String(last) : last.toFixed(1);
    svg.setAttribute("aria-label", `${label}: ${shown} now, at most ${Number.isInteger(top) ? top : top.toFixed(1)} over the last ${values.length} samples`);
    const step = CHART_W / Math.max(1, HISTORY - 1);
    const points = values.map((v, i) => `${(i * step).toFixed(1)},${(CHART_H - 4 - (v / top) * (CHART_H - 8)).toFixed(1)}`);
    const base = document.createElementNS(SVG, "line");
    for (const [k, v] of [["x1", 0], ["y1", CHART_H - 4], ["x2", CHART_W], ["y2", CHART_H - 4], ["stroke", "#d5d5d5"]]) base.setAttribute(k, v);
    svg.appendChild(base);
    if (points.length) {
      const line = document.createElementNS(SVG, "polyline");
      line.setAttribute("points", points.join(" "));
      line.setAttribute("fill", "none");
      line.setAttribute("stroke", "#1f3a5f");
      line.setAttribute("stroke-width", "2");
      svg.appendChild(line);
    }
    const caption = svg.parentElement.querySelector("figcaption");
    caption.textContent = `${label}: ${shown}`;
  }
}

function startOverview() {
  const tick = () => sample().catch((e) => status(e.message));
  tick();
  if (!overviewTimer) overviewTimer = setInterval(tick, SAMPLE_MS);
}

// ---- clients

async function loadClients() {
  const query = new URLSearchParams({ limit: "500" });
  if ($("client-filter").value) query.set("client_id", $("client-filter").value);
  if ($("client-user").value) query.set("user", $("client-user").value);
  const listing = await api("GET", "/api/v1/clients?" + query);
  const body = $("client-table").tBodies[0];
  clear(body);
  for (const c of listing.data) {
    const row = body.insertRow();
    row.className = "clickable";
    row.tabIndex = 0;
    row.dataset.clientId = c.client_id;
    for (const value of [c.client_id, c.username, c.listener, c.address, c.protocol, c.queued]) cell(row, value);
    const open = () => showClient(c.client_id).catch((e) => status(e.message));
    row.addEventListener("click", open);
    row.addEventListener("keydown", (e) => { if (e.key === "Enter") open(); });
  }
  $("client-count").textContent = listing.total + " connected";
}

async function showClient(clientId) {
  const c = await api("GET", "/api/v1/clients/" + encodeURIComponent(clientId));
  shownClient = clientId;
  $("client-detail").hidden = false;
  $("detail-title").textContent = c.client_id + " (" + c.protocol + ", " + c.address + ")";
  const principal = $("detail-principal");
  clear(principal);
  const p = c.principal;
  const facts = [
    ["User name", p.username === null ? null : p.username + " (" + p.username_origin + ")"],
    ["Authenticated by", p.authenticated_by],
    ["Roles", p.roles.map((r) => r.value + " from " + r.source).join(", ")],
    ["Groups", p.groups.map((g) => g.value + " from " + g.source).join(", ")],
    ["Credentials end", p.expires_at ? when(p.expires_at) : "never"],
    ["Claims", p.claims ? JSON.stringify(p.claims) : null],
  ];
  for (const [label, value] of facts) {
    const dt = document.createElement("dt");
    dt.textContent = label;
    const dd = document.createElement("dd");
    dd.textContent = value === null || value === "" ? "–" : value;
    principal.append(dt, dd);
  }
  const rules = $("detail-permissions").tBodies[0];
  clear(rules);
  const permissions = c.permissions || { unrestricted: true, rules: [], default: {} };
  for (const r of permissions.rules) {
    const row = rules.insertRow();
    cell(row, r.index);
    cell(row, r.effect, r.effect === "allow" ? "allow" : "deny");
    cell(row, r.activity);
    cell(row, r.filter);
    cell(row, r.template);
    cell(row, r.origin + (r.authorizer ? " (" + r.authorizer + ")" : ""));
  }
  $("detail-default").textContent = permissions.unrestricted
    ? "No authorizer applies: everything is allowed but writing under $SYS."
    : "Otherwise: " + (permissions.default.allowed ? "allowed" : "denied") + " (" + permissions.default.reason + ").";
  const subs = $("detail-subscriptions");
  clear(subs);
  for (const s of c.subscriptions) {
    const li = document.createElement("li");
    li.textContent = s.filter + " (QoS " + s.qos + ")";
    subs.appendChild(li);
  }
}

async function kick() {
  if (!shownClient) return;
  await api("DELETE", "/api/v1/clients/" + encodeURIComponent(shownClient));
  status("Kicked " + shownClient + ".");
  $("client-detail").hidden = true;
  shownClient = null;
  await loadClients();
}

// ---- live decisions: the event stream, read with fetch (EventSource cannot send a header)

async function watchEvents(event) {
  if (event) event.preventDefault();
  if (eventsAbort) eventsAbort.abort();
  eventsAbort = new AbortController();
  const query = new URLSearchParams();
  if ($("event-types").value.trim()) query.set("type", $("event-types").value.replace(/\s+/g, ""));
  if ($("event-client").value.trim()) query.set("client_id", $("event-client").value.trim());
  let answer;
  try {
    answer = await fetch("/api/v1/events?" + query, {
      headers: { Authorization: "Bearer " + sessionStorage.getItem(TOKEN_KEY) },
      signal: eventsAbort.signal,
    });
  } catch (e) {
    return;
  }
  if (!answer.ok) {
    let message = String(answer.status);
    try { message += ": " + (await answer.json()).error; } catch (_) { /* not JSON */ }
    status(message);
    return;
  }
  status("Watching.");
  const reader = answer.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
        if (data) addEvent(JSON.parse(data));
      }
    }
  } catch (_) {
    return; // aborted: the page was left
  }
  status("The stream ended; press Watch to start again.");
}

function describe(e) {
  switch (e.type) {
    case "authentication": return e.outcome + " by " + e.authenticator + (e.reason ? ": " + e.reason + " (" + e.detail + ")" : "");
    case "denied": return e.action + " " + e.topic + ": " + e.decision;
    case "connection_refused": return e.cause + (e.ban ? " (" + e.ban.kind + " " + e.ban.value + ")" : "") + (e.detail ? ": " + e.detail : "");
    case "connected": return "from " + e.peer + " as " + (e.username || "anonymous");
    case "disconnected": return "reason code " + e.reason_code + (e.by_client ? " (by the client)" : "");
    case "ban": case "revocation": return e.kind + " " + e.value + (e.reason ? ": " + e.reason : "") + " by " + e.by;
    case "ban_lifted": case "revocation_withdrawn": return e.kind + " " + e.value + " by " + e.by;
    case "lost": return e.count + " events lost (the page fell behind)";
    default: return e.detail || e.cause || "";
  }
}

function addEvent(e) {
  const body = $("event-table").tBodies[0];
  const row = body.insertRow(0);
  row.className = e.type === "denied" || e.type === "connection_refused" || e.outcome === "deny" ? "deny" : "";
  cell(row, e.at ? new Date(e.at).toLocaleTimeString() : "");
  cell(row, e.type);
  cell(row, e.client_id);
  cell(row, describe(e));
  while (body.rows.length > MAX_EVENTS) body.deleteRow(body.rows.length - 1);
}

// ---- bans and revocations

function removeButton(row, label, action) {
  const td = document.createElement("td");
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = label;
  button.addEventListener("click", () => action().then(loadBans).catch((e) => status(e.message)));
  td.appendChild(button);
  row.appendChild(td);
}

function valuePath(kind, value) {
  // A network keeps its "/": the API reads the rest of the path as the value.
  return encodeURIComponent(kind) + "/" + value.split("/").map(encodeURIComponent).join("/");
}

async function loadBans() {
  const bans = await api("GET", "/api/v1/bans?limit=1000");
  const body = $("ban-table").tBodies[0];
  clear(body);
  for (const b of bans.data) {
    const row = body.insertRow();
    for (const value of [b.kind, b.value, b.reason, when(b.expires_at), b.by]) cell(row, value);
    removeButton(row, "Lift", () => api("DELETE", "/api/v1/bans/" + valuePath(b.kind, b.value)));
  }
  const revocations = await api("GET", "/api/v1/revocations?limit=1000");
  const rbody = $("revocation-table").tBodies[0];
  clear(rbody);
  for (const r of revocations.data) {
    const row = rbody.insertRow();
    for (const value of [r.kind, r.value, r.source, when(r.expires_at), r.by]) cell(row, value);
    if (r.source === "api") {
      removeButton(row, "Withdraw", () => api("DELETE", "/api/v1/revocations/" + valuePath(r.kind, r.value)));
    } else {
      cell(row, "edit the file");
    }
  }
}

function entry(prefix) {
  const body = { kind: $(prefix + "-kind").value, value: $(prefix + "-value").value.trim() };
  if ($(prefix + "-reason").value) body.reason = $(prefix + "-reason").value;
  if ($(prefix + "-expires").value) body.expires_in = Number($(prefix + "-expires").value);
  return body;
}

async function addBan(event) {
  event.preventDefault();
  const made = await api("POST", "/api/v1/bans", entry("ban"));
  status("Banned " + made.kind + " " + made.value + "; " + made.disconnected + " disconnected.");
  $("ban-value").value = "";
  await loadBans();
}

async function addRevocation(event) {
  event.preventDefault();
  const made = await api("POST", "/api/v1/revocations", entry("revoke"));
  status("Revoked " + made.kind + " " + made.value + ".");
  $("revoke-value").value = "";
  await loadBans();
}

// ---- explain

async function explain(event) {
  event.preventDefault();
  const body = {
    client_id: $("explain-client").value.trim(),
    action: $("explain-action").value,
    topic: $("explain-topic").value,
    qos: Number($("explain-qos").value),
  };
  if ($("explain-user").value) body.principal = { username: $("explain-user").value };
  const answer = await api("POST", "/api/v1/authorize", body);
  const verdict = $("explain-verdict");
  if (answer.admitted === false) {
    verdict.textContent = "Refused at CONNECT: " + answer.refusal.why;
    verdict.className = "deny";
    $("explain-result").textContent = "";
    $("explain-result").hidden = true;
    return;
  }
  // The summary starts with the verdict ("allowed by rule 0: ...", "denied by default ...").
  const summary = answer.summary || (answer.allowed ? "allowed" : "denied");
  verdict.textContent = summary.charAt(0).toUpperCase() + summary.slice(1);
  verdict.className = answer.allowed ? "allow" : "deny";
  $("explain-result").textContent = answer.explanation || "";
  $("explain-result").hidden = !answer.explanation;
}

// ---- wiring

function guarded(handler) {
  return (event) => handler(event).catch((e) => status(e.message));
}

document.addEventListener("DOMContentLoaded", () => {
  $("signin-form").addEventListener("submit", signIn);
  $("signout").addEventListener("click", () => signOut("Signed out."));
  for (const button of document.querySelectorAll("nav button[data-page]")) {
    button.addEventListener("click", () => show(button.dataset.page));
  }
  $("client-search").addEventListener("submit", guarded(async (e) => { e.preventDefault(); await loadClients(); }));
  $("kick").addEventListener("click", guarded(kick));
  $("event-filter").addEventListener("submit", watchEvents);
  $("ban-form").addEventListener("submit", guarded(addBan));
  $("revoke-form").addEventListener("submit", guarded(addRevocation));
  $("explain-form").addEventListener("submit", guarded(explain));
  if (sessionStorage.getItem(TOKEN_KEY)) {
    $("nav").hidden = false;
    show("overview");
  } else {
    show("signin");
  }
});
