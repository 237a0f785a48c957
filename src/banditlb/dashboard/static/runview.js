// The charts of one run, shared by the live page and the replay of a stored run:
// counters, success rate over time, score and regret against the oracle, per-server
// traffic and success, latency histogram.

import { color, groupedBars, histogram, lineChart, pngButton } from "./charts.js";
import { el, num } from "./dom.js";

export const WINDOW_S = 5;

/** The balancer's request-latency buckets (balancer/histogram.py): 0.05 ms growing by 20 %. */
export const LATENCY_BOUNDS = (() => {
  const bounds = [0.05];
  while (bounds[bounds.length - 1] < 20000) {
    bounds.push(Math.round(bounds[bounds.length - 1] * 1.2 * 1e6) / 1e6);
  }
  return bounds;
})();

/** 95 % Wilson interval of a success rate. */
export function wilson(successes, n, z = 1.96) {
  if (!n) return [0, 1];
  const p = successes / n;
  const denom = 1 + (z * z) / n;
  const centre = (p + (z * z) / (2 * n)) / denom;
  const half = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / denom;
  return [Math.max(0, centre - half), Math.min(1, centre + half)];
}

/**
 * Chart series from ticks [{t, requests, accepted, score, oracle}] (running totals at t):
 * the success rate over the last `windowS` seconds with its Wilson band, the score, the
 * oracle's expected score and the regret (oracle - score) when the oracle is known.
 */
export function seriesFromTicks(ticks, windowS = WINDOW_S) {
  const success = [];
  const band = [];
  let j = 0;
  ticks.forEach((tick, i) => {
    while (j < i && ticks[j + 1].t <= tick.t - windowS) j += 1;
    const base = j < i ? ticks[j] : { requests: 0, accepted: 0 };
    const n = tick.requests - base.requests;
    if (n > 0) {
      const rate = (tick.accepted - base.accepted) / n;
      const [lo, hi] = wilson(tick.accepted - base.accepted, n);
      success.push([tick.t, 100 * rate]);
      band.push([tick.t, 100 * lo, 100 * hi]);
    }
  });
  const known = ticks.filter((t) => t.oracle !== null && t.oracle !== undefined);
  return {
    success, band,
    score: ticks.map((t) => [t.t, t.score]),
    oracle: known.map((t) => [t.t, t.oracle]),
    regret: known.map((t) => [t.t, t.oracle - t.score]),
  };
}

function latencyLabel(ms) {
  if (ms >= 1000) return `${+(ms / 1000).toPrecision(2)}s`;
  if (ms >= 10) return String(Math.round(ms));
  return String(+ms.toPrecision(2));
}

/** The q-quantile of a bucket histogram, interpolated inside its bucket (as the balancer does). */
export function bucketQuantile(bounds, counts, q) {
  const total = counts.reduce((a, b) => a + b, 0);
  if (!total) return null;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < counts.length; i += 1) {
    if (counts[i] && seen + counts[i] >= rank) {
      if (i === bounds.length) return bounds[bounds.length - 1];
      const low = i ? bounds[i - 1] : 0;
      return low + ((bounds[i] - low) * Math.max(0, rank - seen)) / counts[i];
    }
    seen += counts[i];
  }
  return bounds[bounds.length - 1];
}

/** Histogram bins from bucket bounds and counts (last count: overflow), empty ends trimmed. */
export function latencyBins(bounds, counts) {
  const first = counts.findIndex((c) => c > 0);
  if (first < 0) return [];
  let last = counts.length - 1;
  while (counts[last] === 0) last -= 1;
  const bins = [];
  for (let i = first; i <= last; i += 1) {
    const label = i < bounds.length ? `≤${latencyLabel(bounds[i])}` : `>${latencyLabel(bounds[bounds.length - 1])}`;
    bins.push({ label, count: counts[i] });
  }
  return bins;
}

const COUNTERS = [
  ["requests", "requests", "Requests answered in this run"],
  ["accepted", "accepted", "Requests whose id an upstream accepted"],
  ["penalized", "penalized attempts", "Attempts beyond the free ones (each costs the penalty weight)"],
  ["rate_limited", "429s", "Attempts an upstream answered 429 (rate limited)"],
  ["score", "score", "accepted - penalty weight x penalized attempts"],
  ["regret", "regret vs oracle", "Oracle's expected score so far minus the score"],
];

function panel(title, canvasName, filename) {
  const canvas = el("canvas", { "data-chart": canvasName, role: "img", "aria-label": title });
  const note = el("div", { class: "muted" });
  const node = el("section", { class: "panel" },
    el("div", { class: "panel-head" }, el("h2", { text: title }), pngButton(canvas, filename)),
    canvas, note);
  return { node, canvas, note };
}

export function createRunView(root, filePrefix) {
  const counters = {};
  const counterRow = el("div", { class: "counters" });
  for (const [key, label, title] of COUNTERS) {
    const value = el("div", { class: "value", text: "–" });
    counters[key] = value;
    counterRow.append(el("div", { class: "counter", "data-counter": key, title },
      el("div", { class: "label", text: label }), value));
  }
  const successPanel = panel("Success rate over time", "success", `${filePrefix}-success`);
  const scorePanel = panel("Cumulative score and regret vs oracle", "score", `${filePrefix}-score`);
  const serversPanel = panel("Per server: traffic share and success rate", "servers",
    `${filePrefix}-servers`);
  const latencyPanel = panel("Request latency", "latency", `${filePrefix}-latency`);
  root.replaceChildren(counterRow, el("div", { class: "grid" }, successPanel.node,
    scorePanel.node, serversPanel.node, latencyPanel.node));

  function update(model) {
    for (const [key] of COUNTERS) {
      const v = model.counters[key];
      counters[key].textContent = key === "score" || key === "regret" ? num(v, 1) : num(v);
    }
    const windowS = model.windowS || WINDOW_S;
    const s = seriesFromTicks(model.ticks, windowS);
    lineChart(successPanel.canvas, {
      series: [{ label: `accepted % (last ${num(windowS, windowS < 10 ? 1 : 0)} s, 95 % band)`, color: color(0),
        points: s.success, band: s.band }],
      xLabel: model.xLabel, yLabel: "accepted %", yMin: 0, yMax: 100,
    });
    const lines = [{ label: "score", color: color(0), points: s.score }];
    if (s.oracle.length) {
      lines.push({ label: "oracle", color: color(2), points: s.oracle, dashed: true });
      lines.push({ label: "regret", color: color(3), points: s.regret });
    }
    lineChart(scorePanel.canvas, { series: lines, xLabel: model.xLabel, yLabel: "score" });
    scorePanel.note.textContent = model.oracleNote || "";
    groupedBars(serversPanel.canvas, {
      groups: model.servers.map((sv) => sv.label),
      series: [
        { label: "traffic share %", color: color(0), values: model.servers.map((sv) => sv.share) },
        { label: "observed success %", color: color(1), values: model.servers.map((sv) => sv.observed) },
        { label: "true success %", color: color(2), values: model.servers.map((sv) => sv.truth) },
      ],
      yLabel: "%", yMin: 0, yMax: 100,
    });
    serversPanel.note.textContent = model.truthNote || "";
    histogram(latencyPanel.canvas, {
      bins: latencyBins(model.latency.bounds, model.latency.counts),
      xLabel: "request latency (ms, bucket upper bound)", yLabel: "requests",
    });
    const { p50, p99 } = model.latency;
    latencyPanel.note.textContent = p50 === null || p50 === undefined ? ""
      : `p50 ${num(p50, 2)} ms · p99 ${num(p99, 2)} ms`;
  }

  return { update };
}

/** Per-server bars from counts: share of attempts, accepted among admitted, true rate. */
export function serverBars(servers, truthByPort) {
  const total = servers.reduce((sum, s) => sum + s.attempts, 0);
  return servers.map((s) => {
    const admitted = s.attempts - s.rate_limited;
    const truth = truthByPort?.get(s.port);
    return {
      label: s.port === null ? s.upstream : `:${s.port}`,
      share: total ? (100 * s.attempts) / total : null,
      observed: admitted > 0 ? (100 * s.accepted) / admitted : null,
      truth: truth === undefined || truth === null ? null : 100 * truth,
    };
  });
}
