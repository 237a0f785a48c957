// Playground: Beta-Bernoulli Thompson sampling over k arms with hidden rates, all in the page.

import { betaDensity, betaSample, prng } from "./beta.js";
import { color, lineChart, pngButton } from "./charts.js";
import { el, num } from "./dom.js";

const GRID = 300;
const canvas = document.getElementById("density");
const armsSelect = document.getElementById("arms");
const seedInput = document.getElementById("seed");
const speed = document.getElementById("speed");
const reveal = document.getElementById("reveal");
const autoplayButton = document.getElementById("autoplay");
document.getElementById("png-slot").append(pngButton(canvas, "thompson-playground"));

let game = null;
let timer = null;

function newGame() {
  const seed = Number.parseInt(seedInput.value, 10) || 0;
  const random = prng(seed);
  const k = Number(armsSelect.value);
  game = {
    random,
    arms: Array.from({ length: k }, () => ({ p: 0.05 + 0.9 * random(), wins: 0, losses: 0,
      sample: null })),
    rounds: 0, reward: 0, regret: 0, picked: null,
  };
  render();
}

function pull(index) {
  const arm = game.arms[index];
  const won = game.random() < arm.p;
  record(index, won);
  game.rounds += 1;
  game.reward += won ? 1 : 0;
  game.regret += Math.max(...game.arms.map((a) => a.p)) - arm.p;
}

function record(index, won) {
  const arm = game.arms[index];
  if (won) arm.wins += 1;
  else arm.losses += 1;
}

/** One Thompson round: a draw from every arm's Beta belief, play the highest. */
function thompsonRound() {
  let best = 0;
  game.arms.forEach((arm, i) => {
    arm.sample = betaSample(game.random, arm.wins + 1, arm.losses + 1);
    if (arm.sample > game.arms[best].sample) best = i;
  });
  game.picked = best;
  pull(best);
  render();
}

function densitySeries() {
  return game.arms.map((arm, i) => {
    const points = [];
    for (let j = 1; j < GRID; j += 1) {
      const x = j / GRID;
      points.push([x, betaDensity(x, arm.wins + 1, arm.losses + 1)]);
    }
    return { label: `arm ${i + 1}`, color: color(i), points };
  });
}

function armCard(arm, i) {
  const mean = (arm.wins + 1) / (arm.wins + arm.losses + 2);
  return el("div", { class: `arm${game.picked === i ? " picked" : ""}`, "data-arm": i,
    style: `--arm-color: ${color(i)}` },
  el("div", { class: "name", text: `arm ${i + 1}` }),
  el("div", { class: "stats", text: `${arm.wins} successes, ${arm.losses} failures` }),
  el("div", { class: "stats", text: `belief mean ${num(mean, 3)}` +
    (arm.sample === null ? "" : ` · last draw ${num(arm.sample, 3)}`) }),
  el("div", { class: "stats", text: reveal.checked ? `true rate ${num(arm.p, 3)}` : "true rate hidden" }),
  el("div", { class: "arm-buttons" },
    el("button", { class: "small", type: "button", "data-action": "success",
      title: "Add a success to this arm's belief", text: "+ success",
      onclick: () => { record(i, true); render(); } }),
    el("button", { class: "small", type: "button", "data-action": "failure",
      title: "Add a failure to this arm's belief", text: "+ failure",
      onclick: () => { record(i, false); render(); } })));
}

function render() {
  document.getElementById("arm-cards").replaceChildren(...game.arms.map(armCard));
  const best = Math.max(...game.arms.map((a) => a.p));
  const bestPicks = game.arms.filter((a) => a.p === best)
    .reduce((sum, a) => sum + a.wins + a.losses, 0);
  const plays = game.arms.reduce((sum, a) => sum + a.wins + a.losses, 0);
  document.getElementById("summary").replaceChildren(
    el("span", { "data-stat": "rounds", text: `rounds: ${game.rounds}` }),
    el("span", { text: `reward: ${game.reward}` }),
    el("span", { text: `expected regret: ${num(game.regret, 2)}`,
      title: "Sum over Thompson rounds of (best true rate - true rate of the arm played)" }),
    el("span", { text: `best arm share: ${plays ? num((100 * bestPicks) / plays, 0) : "–"} %` }));
  lineChart(canvas, {
    series: densitySeries(), xLabel: "success probability", yLabel: "density",
    xMin: 0, xMax: 1, yMin: 0,
    markers: reveal.checked ? game.arms.map((a, i) => ({ x: a.p, color: color(i) })) : [],
  });
}

function schedule() {
  clearInterval(timer);
  timer = setInterval(thompsonRound, 1000 / Number(speed.value));
}

function setAutoplay(on) {
  clearInterval(timer);
  timer = null;
  autoplayButton.textContent = on ? "Pause" : "Autoplay";
  if (on) schedule();
}

function showSpeed() {
  document.getElementById("speed-label").textContent = `${speed.value} rounds/s`;
}

document.getElementById("round").addEventListener("click", thompsonRound);
document.getElementById("new-game").addEventListener("click", newGame);
armsSelect.addEventListener("change", newGame);
reveal.addEventListener("change", render);
autoplayButton.addEventListener("click", () => setAutoplay(timer === null));
speed.addEventListener("input", () => {
  showSpeed();
  if (timer !== null) schedule();
});

showSpeed();
newGame();
