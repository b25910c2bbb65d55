// The demo page: times this library (SIMD and scalar wasm) against a plain JavaScript loop on the
// same random data, checks that they agree, and plots one channel before and after normalization.
import { init } from "/dist/index.js";
import { barChart, histogram, placeholder } from "./charts.js";
import { channel, geometry, maxAbsDiff, moments, plainBatchNorm, randomInput } from "./plain.js";

/** Logical shapes [N, C, ...spatial]; the layout decides the memory order. */
const WORKLOADS = [
  { label: "Conv activations · 32×64×32×32", shape: [32, 64, 32, 32] },
  { label: "Conv, early layer · 16×64×56×56", shape: [16, 64, 56, 56] },
  { label: "Conv, late layer · 64×512×7×7", shape: [64, 512, 7, 7] },
  { label: "Dense layer · 512×1024", shape: [512, 1024] },
];
const EPS = 1e-5;
const MOMENTUM = 0.1;
/** Beyond this (times max |y|) a difference would be a bug, not float32 rounding. */
const AGREE = 1e-5;

const $ = (/** @type {string} */ id) => /** @type {any} */ (document.getElementById(id));
const app = $("app");
const form = $("workload");
const status = $("status");

/** Shows `text` and lets the browser paint it before the next long synchronous step. */
function say(/** @type {string} */ text) {
  status.textContent = text;
  return new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve)));
}

/** "mean 0.000 · variance 1.000" (+ 0 turns a rounded -0 into 0). */
function describe(/** @type {{ mean: number, variance: number }} */ m) {
  const fixed = (/** @type {number} */ v) => (Math.round(v * 1000) / 1000 + 0).toFixed(3);
  return `mean ${fixed(m.mean)} · variance ${fixed(m.variance)}`;
}

/**
 * Median milliseconds per call. Browsers coarsen performance.now() to 0.1 ms, so each sample
 * times enough calls to span 5 ms; finding that count doubles as the warm-up (JIT tiers, first
 * touch of the memory).
 */
function medianMs(/** @type {() => void} */ fn) {
  let calls = 1;
  for (fn(); ; calls *= 2) {
    const t0 = performance.now();
    for (let i = 0; i < calls; i++) fn();
    if (performance.now() - t0 >= 5) break;
  }
  const samples = [];
  const start = performance.now();
  while (samples.length < 5 || (samples.length < 40 && performance.now() - start < 500)) {
    const t0 = performance.now();
    for (let i = 0; i < calls; i++) fn();
    samples.push((performance.now() - t0) / calls);
  }
  samples.sort((a, b) => a - b);
  return samples[samples.length >> 1];
}

const [auto, simd, scalar] = await Promise.allSettled([init(), init({ backend: "simd" }), init({ backend: "scalar" })]);
if (auto.status === "rejected") {
  status.textContent = `This browser could not load the library: ${auto.reason}`;
  throw auto.reason;
}
const chosen = auto.value.backend;
const backends = { simd: simd.status === "fulfilled" ? simd.value : null, scalar: scalar.status === "fulfilled" ? scalar.value : null };
$("backend").textContent =
  chosen === "simd" ? "simd (this engine has WebAssembly SIMD)" : "scalar (no WebAssembly SIMD in this engine)";
$("shape").append(...WORKLOADS.map((w, i) => new Option(w.label, String(i))));

/** Channel 0 of the input and of the library's output with γ = 1, β = 0 (the sliders apply theirs). */
let plotted = /** @type {{ before: Float32Array, normalized: Float32Array } | null} */ (null);

/** [min, max] over all the arrays, widened by 2% so the extreme values fall inside the last bins. */
function extent(/** @type {ArrayLike<number>[]} */ ...arrays) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const a of arrays) {
    for (let i = 0; i < a.length; i++) {
      lo = Math.min(lo, a[i]);
      hi = Math.max(hi, a[i]);
    }
  }
  const pad = 0.02 * (hi - lo || 1);
  return { lo: lo - pad, hi: hi + pad };
}

/** Both histograms on one x range that covers both (so nothing is cut off), from the data. */
function drawHistograms() {
  const gamma = Number($("gamma").value);
  const beta = Number($("beta").value);
  $("gamma-value").textContent = gamma.toFixed(2);
  $("beta-value").textContent = beta.toFixed(2);
  if (!plotted) {
    placeholder($("before"), "Press Run to plot channel 0");
    placeholder($("after"), "Press Run to plot it normalized");
    return;
  }
  const { before, normalized } = plotted;
  const after = normalized.map((v) => gamma * v + beta);
  const axis = extent(before, after);
  const m = moments(before);
  histogram($("before"), before, { ...axis, normal: { mean: m.mean, sd: Math.sqrt(m.variance) } });
  $("before-stats").textContent = describe(m);
  histogram($("after"), after, { ...axis, normal: { mean: beta, sd: gamma } });
  $("after-stats").textContent = describe(moments(after));
}

async function run() {
  const { shape: logical } = WORKLOADS[Number($("shape").value)];
  const layout = form.elements.layout.value;
  const training = form.elements.mode.value === "training";
  const [n, c, ...spatial] = logical;
  const shape = layout === "channels-last" ? [n, ...spatial, c] : logical;
  const g = geometry(shape, layout);

  await say(`Generating ${(g.length / 1e6).toFixed(1)} million random values…`);
  const { x, mu, sigma } = randomInput(g);
  // Inference uses running statistics as a trained model would have them: the data's true ones.
  const params = () => ({
    weight: new Float32Array(c).fill(1),
    bias: new Float32Array(c),
    runningMean: mu.slice(),
    runningVar: sigma.map((s) => s * s),
    training,
    momentum: MOMENTUM,
    eps: EPS,
  });

  /** @type {Record<string, { ms: number, y: Float32Array } | null>} */
  const wasm = {};
  for (const [name, bn] of Object.entries(backends)) {
    if (!bn) {
      wasm[name] = null;
      continue;
    }
    await say(`Timing the ${name} build…`);
    // Tensors in wasm memory, as in a pipeline that keeps its data there: no copies are timed.
    const xt = bn.alloc(g.length);
    const yt = bn.alloc(g.length);
    try {
      xt.data.set(x);
      const options = { shape, layout, ...params(), out: yt };
      const ms = medianMs(() => bn.batchNorm(xt, options));
      wasm[name] = { ms, y: yt.data.slice() };
    } finally {
      xt.free();
      yt.free();
    }
  }
  await say("Timing the JavaScript loop…");
  const y = new Float32Array(g.length);
  const plain = params();
  const jsMs = medianMs(() => plainBatchNorm(x, y, g, plain));

  const speedup = (/** @type {number | undefined} */ ms) => (ms ? `${(jsMs / ms).toFixed(1)}× the JS loop` : "");
  barChart($("chart"), [
    { label: "wasm SIMD", className: "simd", ms: wasm.simd?.ms ?? null, note: speedup(wasm.simd?.ms) },
    { label: "wasm scalar", className: "scalar", ms: wasm.scalar?.ms ?? null, note: speedup(wasm.scalar?.ms) },
    { label: "JavaScript loop", className: "js", ms: jsMs, note: "baseline" },
  ]);

  const scale = y.reduce((m, v) => Math.max(m, Math.abs(v)), 1);
  const diffs = Object.entries(wasm).flatMap(([name, r]) => (r ? [{ name, diff: maxAbsDiff(r.y, y) }] : []));
  const agree = diffs.every(({ diff }) => diff <= AGREE * scale);
  const agreement = $("agreement");
  agreement.dataset.agree = String(agree);
  agreement.textContent =
    diffs.map(({ name, diff }) => `${name}: max |Δ| ${diff.toExponential(1)}`).join(" · ") + (agree ? " ✓ agree" : " ✗ differ");

  plotted = { before: channel(x, g, 0), normalized: channel(/** @type {{ y: Float32Array }} */ (wasm[chosen]).y, g, 0) };
  drawHistograms();

  const count = `${(g.length / 1e6).toFixed(2)} M values, ${c} channels`;
  await say(`Done: ${training ? "training" : "inference"} forward, ${layout}, ${count}.`);
}

form.addEventListener("submit", async (/** @type {Event} */ e) => {
  e.preventDefault();
  $("run").disabled = true;
  app.dataset.state = "running";
  try {
    await run();
    app.dataset.state = "done";
  } catch (error) {
    app.dataset.state = "error";
    await say(`Error: ${error instanceof Error ? error.message : error}`);
    console.error(error);
  } finally {
    $("run").disabled = false;
  }
});
$("gamma").addEventListener("input", drawHistograms);
$("beta").addEventListener("input", drawHistograms);
// the histograms are drawn in CSS pixels at their current width (charts.js)
new ResizeObserver(drawHistograms).observe($("before"));
$("run").disabled = false;
await say("Ready: pick a workload and press Run.");
document.documentElement.dataset.done = "";
