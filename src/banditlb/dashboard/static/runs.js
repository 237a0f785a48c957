// Runs page: sessions and runs from the store; open a run to replay it from its attempts.

import {
  el, fact, getJSON, num, queryParam, sessionOption, setQueryParam, showError, when,
} from "./dom.js";
import { Replay } from "./replay.js";
import { createRunView, serverBars } from "./runview.js";

const sessionSelect = document.getElementById("session");
const table = document.getElementById("runs");
const notice = document.getElementById("notice");
const replaySection = document.getElementById("replay");
const playButton = document.getElementById("play");
const speedSelect = document.getElementById("speed");
const scrub = document.getElementById("scrub");
const clock = document.getElementById("clock");
const view = createRunView(document.getElementById("view"), "replay");

const player = { replay: null, runId: null, t: 0, playing: false, last: 0 };

const COLUMNS = [
  ["run", "Run number in the store"],
  ["session", "Session the run belongs to"],
  ["strategy", "Strategy (short name)"],
  ["params", "Strategy parameters"],
  ["scenario", "Fleet scenario the run was against"],
  ["source", "harness: the harness drove it and stored the fleet's ground truth; lb: the balancer's own run"],
  ["started", "When the run began (local time)"],
  ["attempts", "Attempts stored for the run"],
  ["score", "Score stored with the run (fleet ground truth for harness runs)"],
  ["export", "Download the run's attempts as CSV"],
];

function header() {
  return el("thead", {}, el("tr", {}, COLUMNS.map(([name, title]) =>
    el("th", { class: ["session", "strategy", "params", "scenario", "source"].includes(name) ? "text" : null,
      title, text: name }))));
}

function runRow(run) {
  const csv = el("a", { href: `/dashboard/api/runs/${run.id}/csv`, download: `banditlb-run-${run.id}.csv`,
    text: "CSV", onclick: (event) => event.stopPropagation() });
  return el("tr", { class: "clickable", "data-run": run.id, title: "Open this run's replay",
    onclick: () => openRun(run.id) },
  el("td", { text: run.id }),
  el("td", { class: "text", text: run.session_name }),
  el("td", { class: "text", text: run.strategy }),
  el("td", { class: "text wrap", text: JSON.stringify(run.params) }),
  el("td", { class: "text", text: run.scenario ?? "–" }),
  el("td", { class: "text", text: run.source }),
  el("td", { text: when(run.started_at) }),
  el("td", { text: num(run.attempt_rows) }),
  el("td", { text: num(run.summary.score, 1) }),
  el("td", {}, csv));
}

async function loadRuns() {
  const session = sessionSelect.value;
  try {
    const doc = await getJSON(`/dashboard/api/runs${session ? `?session=${session}` : ""}`);
    table.replaceChildren(header(), el("tbody", {}, doc.runs.map(runRow)));
    document.getElementById("run-count").textContent = `${doc.runs.length} run(s)`;
    notice.replaceChildren(...(doc.note ? [el("div", { class: "note", text: doc.note })] : []));
    markSelected();
  } catch (error) {
    showError(notice, error);
  }
}

async function loadSessions() {
  const doc = await getJSON("/dashboard/api/sessions");
  for (const s of doc.sessions) {
    sessionSelect.append(sessionOption(s));
  }
  const wanted = queryParam("session");
  if (wanted && doc.sessions.some((s) => String(s.id) === wanted)) sessionSelect.value = wanted;
}

function markSelected() {
  for (const row of table.querySelectorAll("tr[data-run]")) {
    row.classList.toggle("selected", row.dataset.run === String(player.runId));
  }
}

async function openRun(runId) {
  pause();
  player.runId = runId;
  setQueryParam("run", runId);
  markSelected();
  const replayNotice = document.getElementById("replay-notice");
  try {
    const doc = await getJSON(`/dashboard/api/runs/${runId}/replay`);
    const run = doc.run;
    player.replay = new Replay(doc);
    document.getElementById("replay-title").textContent =
      `Run ${run.id}: ${run.strategy} on ${run.scenario ?? "no scenario"}`;
    document.getElementById("run-facts").replaceChildren(
      fact("session", run.session_name), fact("source", run.source),
      fact("params", JSON.stringify(run.params)), fact("seed", run.seed ?? "–"),
      fact("started", when(run.started_at)), fact("ended", when(run.ended_at)),
      fact("stored score", num(run.summary.score, 1)),
      fact("rules", `${doc.free_attempts} free attempts, penalty ${doc.penalty_weight}`));
    document.getElementById("csv").href = `/dashboard/api/runs/${run.id}/csv`;
    replayNotice.replaceChildren(...(doc.rows.length ? []
      : [el("div", { class: "note", text: "This run has no stored attempts." })]));
    replaySection.hidden = false;
    seek(player.replay.duration);
  } catch (error) {
    replaySection.hidden = false;
    showError(replayNotice, error);
  }
}

function seek(t) {
  const replay = player.replay;
  if (!replay) return;
  player.t = Math.max(0, Math.min(t, replay.duration));
  scrub.value = replay.duration ? Math.round((1000 * player.t) / replay.duration) : 1000;
  clock.textContent = `${num(player.t, 1)} s / ${num(replay.duration, 1)} s`;
  const model = replay.modelAt(player.t);
  const truth = new Map(model.servers.map((s) => [s.port, replay.trueRate(s.port, player.t)]));
  model.servers = serverBars(model.servers, truth);
  model.truthNote = replay.truthNote;
  view.update(model);
}

function frame(now) {
  if (!player.playing) return;
  const dt = (now - player.last) / 1000;
  player.last = now;
  seek(player.t + dt * Number(speedSelect.value));
  if (player.t >= player.replay.duration) pause();
  else requestAnimationFrame(frame);
}

function play() {
  if (!player.replay) return;
  if (player.t >= player.replay.duration) seek(0);
  player.playing = true;
  player.last = performance.now();
  playButton.textContent = "Pause";
  requestAnimationFrame(frame);
}

function pause() {
  player.playing = false;
  playButton.textContent = "Play";
}

playButton.addEventListener("click", () => (player.playing ? pause() : play()));
scrub.addEventListener("input", () => {
  if (player.replay) seek((Number(scrub.value) / 1000) * player.replay.duration);
});
sessionSelect.addEventListener("change", () => {
  setQueryParam("session", sessionSelect.value || null);
  loadRuns();
});

async function main() {
  try {
    await loadSessions();
  } catch (error) {
    showError(notice, error);
    return;
  }
  await loadRuns();
  const wanted = Number(queryParam("run"));
  if (Number.isInteger(wanted) && wanted > 0) openRun(wanted);
}

main();
