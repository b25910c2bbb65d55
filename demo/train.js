// The demo's Train panel: two copies of the MNIST example's network, with and without BN, trained
// side by side in two workers (train-worker.js) on 4,000 committed digits, their test accuracy drawn
// as it comes in, and the outcome said in plain words.
import { svgDocument } from "/examples/mnist/charts.js";

const ASSET = "/examples/mnist/data/digits.bin.gz";
const BN_COLOR = "#3b6cf6";
const PLAIN_COLOR = "#e0533d";

const $ = (/** @type {string} */ id) => /** @type {any} */ (document.getElementById(id));
const panel = $("train-panel");
const form = $("train-form");
const status = $("train-status");
const chart = $("train-chart");
const result = $("train-result");

/** @typedef {{ step: number, test: number }} Point */
/** @type {{ steps: number, bn: Point[], plain: Point[] } | null} null until the first run */
let shown = null;
/** @type {Worker[]} */
let workers = [];
/** @type {Promise<ArrayBuffer> | null} */
let asset = null;

/** The accuracy chart, drawn in CSS pixels at the container's width (text keeps its size on a phone). */
function draw() {
  if (!shown) return;
  const width = Math.max(260, Math.floor(chart.clientWidth));
  const pct = (/** @type {number} */ v) => `${Math.round(v * 100)}%`;
  chart.innerHTML = svgDocument(
    [
      {
        title: "",
        x: { label: "training steps (60 digits each)", min: 0, max: shown.steps },
        y: { label: "unseen digits read correctly", min: 0, max: 1, ticks: [0, 0.2, 0.4, 0.6, 0.8, 1], format: pct },
        legend: "below",
        rules: [{ y: 0.1, label: "guessing" }],
        series: [
          { label: "with BN", color: BN_COLOR, line: shown.bn.map((p) => /** @type {[number, number]} */ ([p.step, p.test])) },
          { label: "without BN", color: PLAIN_COLOR, line: shown.plain.map((p) => /** @type {[number, number]} */ ([p.step, p.test])) },
        ],
      },
    ],
    { width, height: 300 },
  );
}

/** "88%" */
const percent = (/** @type {number} */ v) => `${(v * 100).toFixed(0)}%`;

/**
 * The outcome in plain words.
 * @param {number} steps
 * @param {Record<string, { stepsTo: Record<string, number | null>, finalTest: number, diverged: boolean }>} r
 */
function explain(steps, r) {
  const reached = (/** @type {{ stepsTo: Record<string, number | null> }} */ x) =>
    x.stepsTo["0.8"] === null ? "never got to 80%" : `got to 80% after ${x.stepsTo["0.8"]} steps`;
  const lines = [
    `After ${steps} steps the network with BN reads ${percent(r.bn.finalTest)} of the 1,000 digits it never saw correctly; the one without BN reads ${percent(r.plain.finalTest)} (guessing would get about 10%).`,
    `With BN it ${reached(r.bn)}; without BN it ${reached(r.plain)}.`,
  ];
  if (r.plain.finalTest < 0.2 && r.bn.finalTest > 0.5) {
    lines.push("At this learning rate the plain network drives the inputs of its sigmoids far into their flat ends, where the slope is zero and learning stops; BN rescales each layer's inputs on every batch, so they stay where the sigmoid can still learn.");
  }
  return lines.join(" ");
}

/** Starts both networks; resolves with their results. */
async function train() {
  const lr = Number(form.elements.lr.value);
  const steps = Number(form.elements.steps.value);
  const run = { steps, bn: /** @type {Point[]} */ ([]), plain: /** @type {Point[]} */ ([]) };
  shown = run;
  result.textContent = "";
  draw();
  status.textContent = "Loading 5,000 digits (0.8 MB)…";
  asset ??= fetch(ASSET).then((r) => {
    if (!r.ok) throw new Error(`${ASSET}: HTTP ${r.status}`);
    return r.arrayBuffer();
  });
  const bytes = await asset;
  status.textContent = `Training both networks at learning rate ${lr}…`;
  const runs = ["bn", "plain"].map((name) => {
    const worker = new Worker(new URL("./train-worker.js", import.meta.url), { type: "module" });
    workers.push(worker);
    return new Promise((resolve, reject) => {
      worker.onmessage = (/** @type {MessageEvent} */ e) => {
        const m = e.data;
        if (m.type === "point") {
          run[/** @type {"bn" | "plain"} */ (name)].push(m.point);
          draw();
        } else if (m.type === "done") resolve([name, m.result]);
        else reject(new Error(m.message));
      };
      worker.onerror = (/** @type {ErrorEvent} */ e) => reject(new Error(e.message || "the training worker failed to start"));
      worker.postMessage({ bytes: bytes.slice(0), batchNorm: name === "bn", lr, steps, seed: 1 });
    });
  });
  try {
    const r = Object.fromEntries(await Promise.all(runs));
    result.textContent = explain(steps, r);
    status.textContent = `Done: ${steps} steps at learning rate ${lr}.`;
  } finally {
    for (const w of workers) w.terminate();
    workers = [];
  }
}

form.addEventListener("submit", async (/** @type {Event} */ e) => {
  e.preventDefault();
  $("train").disabled = true;
  panel.dataset.state = "running";
  try {
    await train();
    panel.dataset.state = "done";
  } catch (error) {
    panel.dataset.state = "error";
    status.textContent = `Error: ${error instanceof Error ? error.message : error}`;
    console.error(error);
  } finally {
    $("train").disabled = false;
  }
});
new ResizeObserver(draw).observe(chart);
$("train").disabled = false;
