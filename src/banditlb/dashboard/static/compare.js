// Compare page: a session's runs as a strategy x scenario table, score bars and regret
// curves; or the JSON lines of `banditlb simulate --json`, read in the browser.

import { color, groupedBars, lineChart, pngButton } from "./charts.js";
import {
  el, getJSON, num, queryParam, sessionOption, setQueryParam, showError,
} from "./dom.js";

const sessionSelect = document.getElementById("session");
const notice = document.getElementById("notice");

const text = (value) => (value === null || value === undefined ? "–" : String(value));
const fixed = (digits) => (value) => num(value, digits);

const STORED_COLUMNS = [
  { key: "scenario", label: "scenario", title: "Fleet scenario the run was against", text: true },
  { key: "strategy", label: "strategy", title: "Strategy (short name)", text: true },
  { key: "params", label: "params", title: "Strategy parameters", text: true,
    format: (v) => JSON.stringify(v ?? {}) },
  { key: "run_id", label: "run", title: "Run number in the store (open it under Runs)", format: text },
  { key: "requests", label: "requests", title: "Requests sent in the run", format: fixed(0) },
  { key: "score", label: "score", title: "Ids accepted minus penalty weight x attempts beyond the free ones (fleet ground truth for harness runs)", format: fixed(1) },
  { key: "score_per_100", label: "score/100", title: "Score per 100 requests: comparable across run lengths; the best per scenario is highlighted", format: fixed(1) },
  { key: "accepted_pct", label: "accepted %", title: "Share of requests whose id was accepted", format: fixed(1) },
  { key: "penalized", label: "penalized", title: "Attempts beyond the free ones (each costs the penalty weight)", format: fixed(0) },
  { key: "rate_limited", label: "429s", title: "Attempts answered 429 (rate limited)", format: fixed(0) },
  { key: "p50_ms", label: "p50 ms", title: "Median request latency as the client saw it (from attempts when the client view was not stored)", format: fixed(2) },
  { key: "p99_ms", label: "p99 ms", title: "99th percentile request latency", format: fixed(2) },
  { key: "pct_of_oracle", label: "% of oracle", title: "Score as a share of the oracle's score on the same scenario, seed, rate and request count (harness runs of preset scenarios only)", format: fixed(1) },
];

const SIMULATED_COLUMNS = [
  { key: "scenario", label: "scenario", title: "Fleet scenario simulated", text: true },
  { key: "strategy", label: "strategy", title: "Strategy (short name)", text: true },
  { key: "score_per_100", label: "score/100 ± 95 % CI", title: "Mean score per 100 requests over the seeds, with the half-width of its 95 % confidence interval; the best per scenario is highlighted",
    format: (v, row) => `${num(v, 1)} ± ${num(row.ci95, 1)}` },
  { key: "pct_of_oracle", label: "% of oracle", title: "Score as a share of the oracle's (which reads the true state) on the same seeds", format: fixed(1) },
  { key: "accepted_pct", label: "accepted %", title: "Share of requests whose id was accepted", format: fixed(1) },
  { key: "penalized_per_100", label: "penalized/100", title: "Attempts beyond the free ones, per 100 requests", format: fixed(2) },
  { key: "rate_limited_per_100", label: "429s/100", title: "Attempts answered 429, per 100 requests", format: fixed(1) },
  { key: "seeds", label: "seeds", title: "Independent simulated runs averaged", format: fixed(0) },
  { key: "requests", label: "requests", title: "Requests per simulated run", format: fixed(0) },
];
const SIMULATED_FIELDS = ["strategy", "scenario", "score_per_100", "ci95", "pct_of_oracle",
  "accepted_pct", "penalized_per_100", "rate_limited_per_100", "seeds", "requests"];

/** Rows ordered by scenario (first seen first), then best score first. */
function ordered(rows) {
  const scenarios = [...new Set(rows.map((r) => r.scenario ?? "–"))];
  return [...rows].sort((a, b) => scenarios.indexOf(a.scenario ?? "–") - scenarios.indexOf(b.scenario ?? "–")
    || (b.score_per_100 ?? -Infinity) - (a.score_per_100 ?? -Infinity));
}

/** The best rows per scenario by score per 100 requests, ties included (not the oracle). */
function bestRows(rows) {
  const contenders = rows.filter((r) => r.strategy !== "oracle" && Number.isFinite(r.score_per_100));
  const top = new Map();
  for (const row of contenders) {
    const key = row.scenario ?? "–";
    top.set(key, Math.max(top.get(key) ?? -Infinity, row.score_per_100));
  }
  return new Set(contenders.filter((r) => r.score_per_100 === top.get(r.scenario ?? "–")));
}

function renderTable(table, columns, rows) {
  const best = bestRows(rows);
  table.replaceChildren(
    el("thead", {}, el("tr", {}, columns.map((c) =>
      el("th", { class: c.text ? "text" : null, title: c.title, text: c.label })))),
    el("tbody", {}, ordered(rows).map((row) => el("tr", {
      class: best.has(row) ? "best" : null,
      title: best.has(row) ? "best score per 100 requests in this scenario" : null,
      "data-run": row.run_id ?? null,
    }, columns.map((c) => {
      const value = row[c.key];
      const shown = c.format ? c.format(value, row) : text(value);
      return el("td", { class: c.text ? "text wrap" : null, text: shown });
    })))));
}

function chartPanel(title, name) {
  const canvas = el("canvas", { "data-chart": name, role: "img", "aria-label": title });
  const node = el("section", { class: "panel" },
    el("div", { class: "panel-head" }, el("h2", { text: title }), pngButton(canvas, name)), canvas);
  return { node, canvas };
}

/** Mean of a field per (scenario, strategy); strategies keep one colour across charts. */
function scoreBars(canvas, rows, errorKey) {
  const scenarios = [...new Set(rows.map((r) => r.scenario ?? "–"))];
  const strategies = [...new Set(rows.map((r) => r.strategy))];
  const cell = (scenario, strategy, key) => {
    const hits = rows.filter((r) => (r.scenario ?? "–") === scenario && r.strategy === strategy
      && Number.isFinite(r[key]));
    return hits.length ? hits.reduce((sum, r) => sum + r[key], 0) / hits.length : null;
  };
  groupedBars(canvas, {
    groups: scenarios,
    series: strategies.map((strategy, i) => ({
      label: strategy, color: color(i),
      values: scenarios.map((sc) => cell(sc, strategy, "score_per_100")),
      errors: errorKey ? scenarios.map((sc) => cell(sc, strategy, errorKey)) : undefined,
    })),
    yLabel: "score per 100 requests",
  });
  return strategies;
}

function renderStored(doc) {
  const title = document.getElementById("stored-title");
  const charts = document.getElementById("stored-charts");
  if (!doc.session) {
    title.textContent = "";
    charts.replaceChildren();
    notice.replaceChildren(el("div", { class: "note", text: doc.note || "no sessions stored yet" }));
    return;
  }
  notice.replaceChildren();
  title.textContent = `Session ${doc.session.name}: ${doc.rows.length} run(s)`;
  renderTable(document.getElementById("table"), STORED_COLUMNS, doc.rows);
  const bars = chartPanel("Score by strategy, per scenario", "compare-scores");
  charts.replaceChildren(bars.node);
  const strategies = scoreBars(bars.canvas, doc.rows);
  const scenarios = [...new Set(doc.rows.map((r) => r.scenario ?? "–"))];
  for (const scenario of scenarios) {
    const rows = doc.rows.filter((r) => (r.scenario ?? "–") === scenario);
    const panel = chartPanel(`Cumulative regret vs oracle: ${scenario}`, `compare-regret-${scenario}`);
    charts.append(panel.node);
    const series = rows.filter((r) => r.regret).map((r) => ({
      label: `${r.strategy} (run ${r.run_id})`, color: color(strategies.indexOf(r.strategy)),
      points: r.regret,
    }));
    const unknown = rows.find((r) => !r.regret);
    lineChart(panel.canvas, { series, xLabel: "request", yLabel: "oracle score - score",
      empty: unknown ? unknown.oracle_note : "no runs" });
  }
}

async function loadSession(sessionId) {
  try {
    const doc = await getJSON(`/dashboard/api/compare${sessionId ? `?session=${sessionId}` : ""}`);
    sessionSelect.replaceChildren(...doc.sessions.map(sessionOption));
    if (doc.session) sessionSelect.value = doc.session.id;
    renderStored(doc);
  } catch (error) {
    showError(notice, error);
  }
}

/** Rows from `banditlb simulate --json` output; bad lines are reported, not fatal. */
function parseSimulated(textContent) {
  const rows = [];
  const problems = [];
  textContent.split(/\r?\n/).forEach((line, i) => {
    if (!line.trim()) return;
    let row;
    try {
      row = JSON.parse(line);
    } catch {
      problems.push(`line ${i + 1} is not JSON`);
      return;
    }
    const missing = SIMULATED_FIELDS.filter((f) => !(row && f in row));
    if (missing.length) problems.push(`line ${i + 1} lacks ${missing.join(", ")}`);
    else rows.push(row);
  });
  return { rows, problems };
}

function renderSimulated(name, { rows, problems }) {
  document.getElementById("simulated").hidden = false;
  document.getElementById("simulated-title").textContent = `Simulated: ${name} (${rows.length} rows)`;
  document.getElementById("simulated-notice").replaceChildren(...(problems.length
    ? [el("div", { class: "error", text: `skipped: ${problems.slice(0, 5).join("; ")}${problems.length > 5 ? "; …" : ""}` })]
    : []));
  renderTable(document.getElementById("sim-table"), SIMULATED_COLUMNS, rows);
  const bars = chartPanel("Simulated score by strategy, per scenario (95 % CI)", "simulated-scores");
  document.getElementById("simulated-charts").replaceChildren(bars.node);
  scoreBars(bars.canvas, rows, "ci95");
}

document.getElementById("jsonl").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  if (file) renderSimulated(file.name, parseSimulated(await file.text()));
});
sessionSelect.addEventListener("change", () => {
  setQueryParam("session", sessionSelect.value);
  loadSession(sessionSelect.value);
});

loadSession(queryParam("session"));
