// Live page: the balancer's /events stream (heartbeats, metrics) drawn as it arrives, and the
// fleet's truth (through /dashboard/api/truth) for the oracle's expected score.

import { el, fact, getJSON, num, portOf, showError } from "./dom.js";
import { createRunView, serverBars } from "./runview.js";

const STALE_MS = 3000;
const RECONNECT_MS = 2000;
const TRUTH_POLL_MS = 1000;
const FIRST_POLL_MS = 200;
const MAX_TICKS = 4000;
const RATE_WINDOW_S = 5;

const connection = document.getElementById("connection");
const notice = document.getElementById("notice");
const facts = document.getElementById("facts");

const live = {
  source: null, everOpen: false, lastBeat: 0, snapshot: null, view: null,
  run: null, ticks: [], t0: 0, lastRequests: 0,
  oracleRate: null, oracleStart: null, oracleSum: 0, oracleNote: "",
  truthByPort: new Map(), truthNote: "",
};

function setConnection(state, text) {
  connection.dataset.state = state;
  connection.textContent = text;
}

function updateConnection() {
  const source = live.source;
  if (!source || source.readyState !== EventSource.OPEN) {
    setConnection("reconnecting", live.everOpen ? "reconnecting" : "connecting");
    return;
  }
  const silent = Date.now() - live.lastBeat;
  if (silent > STALE_MS) setConnection("stale", `stale (no heartbeat for ${Math.round(silent / 1000)} s)`);
  else setConnection("connected", "connected");
}

function connect() {
  const source = new EventSource("/events");
  live.source = source;
  source.addEventListener("open", () => { live.everOpen = true; });
  source.addEventListener("heartbeat", () => { live.lastBeat = Date.now(); updateConnection(); });
  source.addEventListener("metrics", (event) => onSnapshot(JSON.parse(event.data)));
  source.addEventListener("error", () => {
    updateConnection();
    if (source.readyState === EventSource.CLOSED) {
      // Refused for good (e.g. too many streams): the browser gives up, we try again later.
      setTimeout(connect, RECONNECT_MS);
    }
  });
}

/** A new run (or a restarted balancer) starts the charts afresh. */
function startRun(snap) {
  live.run = `${snap.session_id}|${snap.run_id}|${snap.strategy}`;
  live.ticks = [];
  live.t0 = snap.t;
  live.lastRequests = snap.requests;
  live.oracleStart = null;
  live.oracleSum = 0;
}

function onSnapshot(snap) {
  live.snapshot = snap;
  const run = `${snap.session_id}|${snap.run_id}|${snap.strategy}`;
  if (run !== live.run || snap.requests < live.lastRequests) startRun(snap);
  if (live.oracleStart !== null) {
    live.oracleSum += (snap.requests - live.lastRequests) * live.oracleRate;
  } else if (live.oracleRate !== null) {
    live.oracleStart = { requests: snap.requests, score: snap.score };
  }
  live.lastRequests = snap.requests;
  const oracle = live.oracleStart === null ? null : live.oracleStart.score + live.oracleSum;
  live.ticks.push({ t: snap.t - live.t0, requests: snap.requests, accepted: snap.accepted,
    score: snap.score, oracle });
  if (live.ticks.length > MAX_TICKS) {
    const half = MAX_TICKS / 2;
    live.ticks = [...live.ticks.slice(0, half).filter((_, i) => i % 2 === 0),
      ...live.ticks.slice(half)];
  }
  render(snap, oracle);
}

function oracleNote() {
  if (live.oracleStart === null) return live.oracleNote || "oracle unavailable";
  const base = "oracle: expected score from the fleet's truth (best true success rates among " +
    "servers admitting requests, over the free attempts, capped by the fleet's capacity)";
  return live.oracleStart.requests > 0
    ? `${base}; regret counted from request ${live.oracleStart.requests}, when the estimate became available`
    : base;
}

/** Ids waiting for capacity now, and what waiting cost so far. */
function waitingText(w) {
  if (!w) return "–";
  const ms = (v) => (v === null || v === undefined ? "–" : `${num(v, 0)} ms`);
  return `${w.now} now (at most ${w.max}); ${w.waited} waited (p50 ${ms(w.p50_ms)}, ` +
    `p99 ${ms(w.p99_ms)}); ${w.turned_away} turned away`;
}

/** The replicas sharing this pool's evidence, and how fresh the shared view is. */
function sharedText(sh) {
  if (!sh) return "off (this process learns alone)";
  const link = sh.connected ? "connected" : `Redis unreachable (${sh.errors} errors; local state)`;
  const lag = sh.lag_ms === null ? "no batch yet" : `newest batch ${num(sh.lag_ms, 1)} ms old`;
  return `${sh.replicas} replica${sh.replicas === 1 ? "" : "s"} of pool ${sh.pool}; ${link}; ` +
    `${lag}; every ${sh.sync_ms} ms`;
}

/** Each pool on this listener: where its requests come from, what serves them, how it does. */
function poolsText(pools, shown) {
  if (!pools || pools.length < 2) return null;
  const where = (r) => `${r.host ?? "any host"}${r.path_prefix}`;
  return pools.map((p) => `${p.name === shown ? "▸ " : ""}${p.name}: ${p.routes.map(where).join(", ")}` +
    ` → ${p.upstreams.length} upstream${p.upstreams.length === 1 ? "" : "s"} (${p.strategy}); ` +
    `${p.requests} requests, score ${num(p.score, 1)}`).join(" · ");
}

function render(snap, oracle) {
  facts.replaceChildren(
    fact("strategy", `${snap.strategy}${snap.alias && snap.alias !== snap.strategy ? ` (${snap.alias})` : ""}`),
    fact("params", JSON.stringify(snap.params || {})),
    fact("scenario", snap.scenario ?? "–"),
    fact("run", snap.run_id ?? "not recorded"),
    fact("rules", `${snap.free_attempts} free attempts, penalty ${snap.penalty_weight}`),
    fact("recording", snap.recording === false ? `off (${snap.dropped} dropped)` : "on"),
    fact("waiting", waitingText(snap.waiting)),
    fact("shared", sharedText(snap.shared)),
  );
  const pools = poolsText(snap.pools, snap.pool);
  if (pools) facts.append(fact("pools", pools));
  const servers = snap.servers.map((s) => ({ ...s, port: portOf(s.upstream) }));
  live.view.update({
    counters: { requests: snap.requests, accepted: snap.accepted, penalized: snap.penalized,
      rate_limited: snap.rate_limited, score: snap.score,
      regret: oracle === null ? null : oracle - snap.score },
    ticks: live.ticks,
    xLabel: "seconds since the run began (or since this page opened)",
    oracleNote: oracleNote(),
    servers: serverBars(servers, live.truthByPort),
    truthNote: live.truthNote,
    latency: snap.latency_ms,
  });
}

function loseOracle(reason) {
  live.oracleRate = null;
  live.oracleStart = null;
  live.oracleSum = 0;
  live.oracleNote = `oracle unavailable: ${reason}`;
  live.truthByPort = new Map();
  live.truthNote = `true rates unavailable: ${reason}`;
}

/** Requests per second over the last few seconds (null until it can be told). */
function requestRate() {
  const ticks = live.ticks;
  if (ticks.length < 2) return null;
  const last = ticks[ticks.length - 1];
  const first = ticks.find((t) => t.t >= last.t - RATE_WINDOW_S) || ticks[0];
  const span = last.t - first.t;
  return span > 0 ? (last.requests - first.requests) / span : null;
}

async function pollTruth() {
  const snap = live.snapshot;
  if (snap) {
    const ports = snap.servers.map((s) => portOf(s.upstream)).filter((p) => p !== null);
    try {
      const rps = requestRate();
      const truth = await getJSON(`/dashboard/api/truth?ports=${ports.join(",")}` +
        `&free_attempts=${snap.free_attempts}${rps ? `&rps=${rps.toFixed(3)}` : ""}`);
      if (truth.available) {
        live.oracleRate = truth.oracle_per_request;
        live.truthByPort = new Map(truth.servers.map((s) => [s.port, s.success]));
        live.truthNote = `true rates from the fleet; oracle expects ${num(truth.oracle_per_request, 3)} per request now`;
      } else {
        loseOracle(truth.reason);
      }
    } catch (error) {
      loseOracle(error.message);
    }
  }
  setTimeout(pollTruth, snap ? TRUTH_POLL_MS : FIRST_POLL_MS);
}

async function main() {
  let info;
  try {
    info = await getJSON("/dashboard/api/info");
  } catch (error) {
    showError(notice, error);
    return;
  }
  if (!info.live) {
    setConnection("offline", "no live balancer");
    notice.replaceChildren(el("div", { class: "note", text: "This dashboard is served by " +
      "`banditlb dashboard` alone: there is no balancer here and so nothing live to show. " +
      "Stored runs are under Runs and Compare; for live data open /dashboard on a running " +
      "`banditlb lb` (or `banditlb demo`)." }));
    return;
  }
  live.view = createRunView(document.getElementById("view"), "live");
  if (info.fleet_url) pollTruth();
  else loseOracle("no fleet URL configured (start the balancer with --fleet-url URL)");
  connect();
  setInterval(updateConnection, 500);
}

main();
