// The experiments of `npm run example:mnist`: which runs make up a quick or full sweep, how one task
// runs (a training run, the long BN run with the inference-statistics comparison, the step-time
// split), and how the results are summarized and drawn. Tasks are independent and deterministic
// (seeded), so they can run in any order, on any number of workers.
import { svgDocument } from "./charts.js";
import {
  Net, TIME_KINDS, accuracy, exactStatistics, rows, setStats, statsOf, train, updateBnStatistics,
} from "./mlp.js";

/**
 * The sweep. Learning rates and init scales are factor-4 grids; `chartLrs` are the two learning
 * rates of the accuracy-against-steps chart.
 * @param {boolean} full
 * @param {number[]} [seeds] default [1, 2, 3] (full) or [1] (quick)
 */
export function plan(full, seeds) {
  const s = seeds ?? (full ? [1, 2, 3] : [1]);
  return full
    ? { full, seeds: s, steps: 800, sigmoidLrs: [0.125, 0.5, 2, 8, 32], chartLrs: [0.5, 8], initLr: 2, initScales: [0.25, 1, 4], reluLrs: [0.125, 0.5, 2, 8], reluSeeds: s.slice(0, 2), placementLr: 2, long: { lr: 2, steps: 2000 } }
    : { full, seeds: s, steps: 150, sigmoidLrs: [0.5, 8], chartLrs: [0.5, 8], initLr: 2, initScales: [4], reluLrs: [0.5], reluSeeds: s.slice(0, 1), placementLr: 2, long: { lr: 2, steps: 300 } };
}

/**
 * @typedef {{ kind: "run", group: string, config: import("./mlp.js").RunConfig }
 *   | { kind: "inference", group: string, config: import("./mlp.js").RunConfig }
 *   | { kind: "timing", steps: number }} Task
 */

/**
 * Every task of a plan; a configuration shared by two sweeps runs once.
 * @param {ReturnType<typeof plan>} p
 * @returns {Task[]}
 */
export function tasks(p) {
  /** @type {Map<string, Task>} */
  const byKey = new Map();
  const add = (/** @type {string} */ group, /** @type {import("./mlp.js").RunConfig} */ config, kind = "run") => {
    const key = configKey(config);
    if (!byKey.has(key)) byKey.set(key, /** @type {Task} */ ({ kind, group, config }));
  };
  const base = { activation: /** @type {const} */ ("sigmoid"), initScale: 1, placement: /** @type {const} */ ("before"), steps: p.steps, thresholds: [0.5, 0.8, 0.9, 0.95] };
  for (const batchNorm of [false, true]) {
    for (const seed of p.seeds) add("long", { ...base, batchNorm, lr: p.long.lr, seed, steps: p.long.steps }, batchNorm && seed === p.seeds[0] ? "inference" : "run");
    for (const seed of p.seeds) {
      for (const lr of p.sigmoidLrs) add("lr", { ...base, batchNorm, lr, seed });
      for (const initScale of p.initScales) add("init", { ...base, batchNorm, lr: p.initLr, initScale, seed });
    }
    for (const seed of p.reluSeeds) for (const lr of p.reluLrs) add("relu", { ...base, activation: "relu", batchNorm, lr, seed });
  }
  for (const seed of p.seeds) add("placement", { ...base, batchNorm: true, placement: "after", lr: p.placementLr, seed });
  return [...byKey.values(), { kind: "timing", steps: p.full ? 500 : 50 }];
}

/** @param {import("./mlp.js").RunConfig} c */
export function configKey(c) {
  return [c.activation, c.batchNorm ? `bn-${c.placement}` : "plain", `lr${c.lr}`, `init${c.initScale}`, `seed${c.seed}`, `steps${c.steps}`].join(" ");
}

/**
 * Runs one task.
 * @param {any} bn backend from init()
 * @param {{ train: import("./mlp.js").DigitSet, test: import("./mlp.js").DigitSet }} data
 * @param {Task} task
 */
export function runTask(bn, data, task) {
  if (task.kind === "timing") return { task, timing: stepTimes(bn, data, task.steps) };
  if (task.kind === "run") return { task, run: train(bn, data, task.config) };
  const { net, ...run } = train(bn, data, task.config, { keep: true });
  const inference = compareInferenceStats(bn, /** @type {Net} */ (net), data, run.ms / task.config.steps);
  /** @type {Net} */ (net).dispose();
  return { task, run, inference };
}

/**
 * Test and train accuracy of a trained BN net with three sets of inference statistics: the moving
 * averages training left, update_bn's averaged batch statistics, the exact population statistics;
 * with each pass's median time over three next to one epoch of training, and how far each set of
 * statistics is from the exact one.
 * @param {any} bn
 * @param {Net} net
 * @param {{ train: import("./mlp.js").DigitSet, test: import("./mlp.js").DigitSet }} data
 * @param {number} msPerStep the training run's mean step time
 */
function compareInferenceStats(bn, net, data, msPerStep) {
  const score = () => ({ test: accuracy(net, data.test), train: accuracy(net, data.train) });
  /** Runs a pass three times (each from the moving averages) and keeps the median time. */
  const timed = (/** @type {() => import("./mlp.js").LayerStats} */ pass) => {
    const times = [];
    let stats = moving;
    for (let i = 0; i < 3; i++) {
      setStats(net, moving);
      const t0 = performance.now();
      stats = pass();
      times.push(performance.now() - t0);
    }
    return { stats, ms: times.sort((a, b) => a - b)[1] };
  };
  const moving = statsOf(net);
  const movingScore = score();
  const updated = timed(() => updateBnStatistics(bn, net, data.train));
  const updatedScore = score();
  const exact = timed(() => exactStatistics(bn, net, data.train));
  const exactScore = score();
  setStats(net, moving);
  /** Per layer: max over channels of |mean - exact mean| / exact sd and of |var / exact var - 1|. */
  const distance = (/** @type {import("./mlp.js").LayerStats} */ s) =>
    s.map((layer, l) => {
      let mean = 0;
      let variance = 0;
      const ex = exact.stats[l];
      for (let c = 0; c < layer.mean.length; c++) {
        mean = Math.max(mean, Math.abs(layer.mean[c] - ex.mean[c]) / Math.sqrt(ex.variance[c]));
        variance = Math.max(variance, Math.abs(layer.variance[c] / ex.variance[c] - 1));
      }
      return { mean, variance };
    });
  return {
    epochMs: (msPerStep * data.train.n) / 60,
    movingAverage: { ...movingScore, distance: distance(moving) },
    updateBn: { ...updatedScore, ms: updated.ms, distance: distance(updated.stats) },
    exact: { ...exactScore, ms: exact.ms },
  };
}

/**
 * Milliseconds per training step in each part of the sigmoid net, with and without BN, on the
 * training set's first batches: after 20 untimed steps, five rounds of `steps / 5` steps, with and
 * without BN alternating; each figure is the median over the rounds (other processes come and go).
 * @param {any} bn
 * @param {{ train: import("./mlp.js").DigitSet }} data
 * @param {number} steps
 */
function stepTimes(bn, data, steps) {
  const batches = Math.floor(data.train.n / 60);
  const nets = [false, true].map((batchNorm) => new Net(bn, { batchNorm, seed: 1 }));
  /** @type {Record<string, number>[][]} */
  const rounds = [[], []];
  const run = (/** @type {Net} */ net, /** @type {number} */ count) => {
    for (let i = 0; i < count; i++) {
      const b = rows(data.train, (i % batches) * 60, 60);
      net.trainStep(b.x, b.labels, 0.5);
    }
  };
  for (const net of nets) run(net, 20);
  for (let round = 0; round < 5; round++) {
    nets.forEach((net, i) => {
      net.timing = Object.fromEntries(TIME_KINDS.map((k) => [k, 0]));
      const t0 = performance.now();
      run(net, steps / 5);
      rounds[i].push({ total: performance.now() - t0, ...net.timing });
      net.timing = null;
    });
  }
  const median = (/** @type {number[]} */ v) => [...v].sort((a, b) => a - b)[v.length >> 1];
  const perStep = (/** @type {Record<string, number>[]} */ r) =>
    Object.fromEntries(["total", ...TIME_KINDS].map((k) => [k, median(r.map((x) => x[k])) / (steps / 5)]));
  for (const net of nets) net.dispose();
  return { plain: perStep(rounds[0]), bn: perStep(rounds[1]) };
}

/** @param {number[]} v */
const mean = (v) => v.reduce((a, b) => a + b, 0) / v.length;

/**
 * Median of the steps each seed took to reach a threshold; a seed that never got there counts as
 * slower than every seed that did (null when half or more never got there).
 * @param {(number | null)[]} v
 */
function medianSteps(v) {
  const sorted = [...v].sort((a, b) => (a ?? Infinity) - (b ?? Infinity));
  const mid = sorted[(sorted.length - 1) >> 1];
  return sorted.length % 2 ? mid : mid === null || sorted[sorted.length >> 1] === null ? null : (mid + /** @type {number} */ (sorted[sorted.length >> 1])) / 2;
}

/**
 * @typedef {ReturnType<typeof runTask>} TaskResult
 */

/**
 * Groups runs by everything but the seed.
 * @param {import("./mlp.js").RunResult[]} runs
 */
function bySettings(runs) {
  /** @type {Map<string, import("./mlp.js").RunResult[]>} */
  const groups = new Map();
  for (const r of runs) {
    const key = configKey({ ...r.config, seed: 0 });
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  return [...groups.values()].map((rs) => {
    const c = rs[0].config;
    return {
      activation: c.activation,
      batchNorm: c.batchNorm,
      placement: c.placement,
      lr: c.lr,
      initScale: c.initScale,
      steps: c.steps,
      seeds: rs.map((r) => r.config.seed),
      stepsTo90: rs.map((r) => r.stepsTo["0.9"]),
      medianStepsTo90: medianSteps(rs.map((r) => r.stepsTo["0.9"])),
      stepsTo80: rs.map((r) => r.stepsTo["0.8"]),
      finalTest: mean(rs.map((r) => r.finalTest)),
      finalTrain: mean(rs.map((r) => r.finalTrain)),
      minFinalTest: Math.min(...rs.map((r) => r.finalTest)),
      diverged: rs.filter((r) => r.diverged).length,
    };
  });
}

/**
 * The numbers the README quotes, from every task's result.
 * @param {ReturnType<typeof plan>} p
 * @param {TaskResult[]} results
 */
export function summarize(p, results) {
  const runs = results.filter((r) => r.run).map((r) => /** @type {import("./mlp.js").RunResult} */ (r.run));
  const pick = (/** @type {(c: import("./mlp.js").RunConfig) => boolean} */ f) => bySettings(runs.filter((r) => f(r.config)));
  const sigmoid = pick((c) => c.activation === "sigmoid" && c.initScale === 1 && c.placement === "before" && c.steps === p.steps);
  const relu = pick((c) => c.activation === "relu" && c.steps === p.steps);
  /** The largest learning rate at which every seed reached 90% test accuracy (null: none). */
  const largestLr = (/** @type {ReturnType<typeof bySettings>} */ rowsOf, /** @type {boolean} */ batchNorm) => {
    const lrs = rowsOf.filter((g) => g.batchNorm === batchNorm && g.stepsTo90.every((s) => s !== null)).map((g) => g.lr);
    return lrs.length ? Math.max(...lrs) : null;
  };
  const long = runs.filter((r) => r.config.steps === p.long.steps && r.config.lr === p.long.lr && r.config.activation === "sigmoid" && r.config.initScale === 1 && r.config.placement === "before");
  const inference = results.find((r) => r.inference)?.inference ?? null;
  const timing = results.find((r) => r.timing)?.timing ?? null;
  return {
    lr: sigmoid,
    largestLr: { sigmoid: { plain: largestLr(sigmoid, false), bn: largestLr(sigmoid, true) }, relu: { plain: largestLr(relu, false), bn: largestLr(relu, true) } },
    init: pick((c) => c.activation === "sigmoid" && c.lr === p.initLr && c.placement === "before" && c.steps === p.steps && p.initScales.includes(/** @type {number} */ (c.initScale))),
    relu,
    placement: pick((c) => c.activation === "sigmoid" && c.lr === p.placementLr && c.batchNorm && c.initScale === 1 && c.steps === p.steps),
    long: long.map((r) => ({
      batchNorm: r.config.batchNorm,
      lr: r.config.lr,
      steps: r.config.steps,
      seed: r.config.seed,
      stepsTo: r.stepsTo,
      finalTest: r.finalTest,
      finalTrain: r.finalTrain,
      gap: r.finalTrain - r.finalTest,
      bestTest: Math.max(...r.curve.map((q) => q.test)),
      msPerStep: r.ms / r.config.steps,
    })),
    inference,
    timing,
  };
}

const BN_COLOR = "#1f77b4";
const PLAIN_COLOR = "#e6550d";

/**
 * The three SVG charts: accuracy against steps at two learning rates, steps to 90% against the
 * learning rate, the percentile bands of one unit's sigmoid input.
 * @param {ReturnType<typeof plan>} p
 * @param {TaskResult[]} results
 * @returns {Record<string, string>} file name -> SVG
 */
export function charts(p, results) {
  const runs = results.filter((r) => r.run).map((r) => /** @type {import("./mlp.js").RunResult} */ (r.run));
  const sweep = runs.filter((r) => r.config.activation === "sigmoid" && r.config.initScale === 1 && r.config.placement === "before" && r.config.steps === p.steps);
  const seedsNote = `seeds ${p.seeds.join(", ")}`;

  /** Mean test accuracy over seeds at each evaluated step. */
  const meanCurve = (/** @type {import("./mlp.js").RunResult[]} */ rs) =>
    /** @type {[number, number][]} */ (rs[0].curve.map((q, i) => [q.step, mean(rs.map((r) => r.curve[i]?.test ?? r.curve[r.curve.length - 1].test))]));
  const accuracyChart = {
    title: `Test accuracy, sigmoid MLP, mean of ${p.seeds.length} seed${p.seeds.length > 1 ? "s" : ""}`,
    x: { label: "SGD steps (batches of 60)", min: 0, max: p.steps },
    y: { label: "test accuracy", min: 0, max: 1 },
    legend: /** @type {const} */ ("middle-right"),
    rules: [{ y: 0.9, label: "90%" }],
    series: p.chartLrs.flatMap((lr, i) =>
      [true, false].map((batchNorm) => ({
        label: `${batchNorm ? "BN" : "no BN"}, learning rate ${lr}`,
        color: batchNorm ? BN_COLOR : PLAIN_COLOR,
        dash: i ? "6 4" : undefined,
        line: meanCurve(sweep.filter((r) => r.config.lr === lr && r.config.batchNorm === batchNorm)),
      })),
    ),
  };

  const notReached = p.steps * 1.12;
  const lrChart = (/** @type {string} */ activation, /** @type {import("./mlp.js").RunResult[]} */ rs, /** @type {number[]} */ lrs) => ({
    title: `Steps to 90% test accuracy, ${activation}`,
    x: { label: "learning rate (log scale)", min: lrs[0] / 1.6, max: lrs[lrs.length - 1] * 1.6, log: true, ticks: lrs },
    y: { label: "steps", min: 0, max: p.steps * 1.2 },
    legend: /** @type {const} */ ("below"),
    rules: [{ y: notReached, label: `not reached in ${p.steps} steps` }],
    series: [true, false].flatMap((batchNorm) => {
      const color = batchNorm ? BN_COLOR : PLAIN_COLOR;
      const mine = rs.filter((r) => r.config.batchNorm === batchNorm);
      const jitter = (/** @type {number} */ seed) => 2 ** ((seed - (p.seeds.length + 1) / 2) * 0.06 + (batchNorm ? 0.03 : -0.03));
      return [
        {
          label: batchNorm ? "BN" : "no BN",
          color,
          line: /** @type {[number, number][]} */ (lrs.map((lr) => [lr, medianSteps(mine.filter((r) => r.config.lr === lr).map((r) => r.stepsTo["0.9"])) ?? null])),
        },
        { label: "", color, dots: /** @type {[number, number][]} */ (mine.filter((r) => r.stepsTo["0.9"] !== null).map((r) => [r.config.lr * jitter(r.config.seed), r.stepsTo["0.9"]])) },
        { label: "", color, hollow: true, dots: /** @type {[number, number][]} */ (mine.filter((r) => r.stepsTo["0.9"] === null).map((r) => [r.config.lr * jitter(r.config.seed), notReached])) },
      ];
    }),
  });
  const relu = runs.filter((r) => r.config.activation === "relu" && r.config.steps === p.steps);

  const long = runs.filter((r) => r.config.steps === p.long.steps && r.config.lr === p.long.lr && r.config.activation === "sigmoid" && r.config.placement === "before" && r.config.initScale === 1 && r.config.seed === p.seeds[0]);
  const bandChart = (/** @type {boolean} */ batchNorm) => {
    const r = long.find((q) => q.config.batchNorm === batchNorm);
    const curve = r ? r.curve : [];
    const lo = 2 * Math.floor(Math.min(-1, ...long.flatMap((q) => q.curve.map((c) => c.p15))) / 2);
    const hi = 2 * Math.ceil(Math.max(1, ...long.flatMap((q) => q.curve.map((c) => c.p85))) / 2);
    return {
      title: `${batchNorm ? "With BN" : "Without BN"}: one unit's sigmoid input`,
      x: { label: "SGD steps", min: 0, max: p.long.steps },
      y: { label: "input to the sigmoid", min: lo, max: hi },
      legend: /** @type {const} */ ("top-right"),
      series: [
        {
          label: "15th-85th percentile",
          color: batchNorm ? BN_COLOR : PLAIN_COLOR,
          band: /** @type {[number, number, number][]} */ (curve.map((c) => [c.step, c.p15, c.p85])),
        },
        { label: "median", color: batchNorm ? BN_COLOR : PLAIN_COLOR, line: /** @type {[number, number][]} */ (curve.map((c) => [c.step, c.p50])) },
      ],
    };
  };
  const longNote = long[0] ? `learning rate ${p.long.lr}, seed ${long[0].config.seed}` : "";
  return {
    "mnist-accuracy.svg": svgDocument([accuracyChart], {
      width: 720,
      height: 420,
      caption: `784-100-100-100-10 sigmoid MLP, 8,000 training / 2,000 test digits, plain SGD, ${seedsNote}. npm run example:mnist${p.full ? " -- --full" : ""}`,
    }),
    "mnist-lr.svg": svgDocument([lrChart("sigmoid", sweep, p.sigmoidLrs), lrChart("ReLU", relu, p.reluLrs)], {
      width: 520,
      height: 400,
      caption: `Dots: one seed each (hollow, at the top: never reached 90% in ${p.steps} steps); lines: median over seeds. Sigmoid ${seedsNote}, ReLU seeds ${p.reluSeeds.join(", ")}.`,
    }),
    "mnist-percentiles.svg": svgDocument([bandChart(false), bandChart(true)], {
      width: 520,
      height: 360,
      caption: `Last hidden layer, unit 0, over the 2,000 test digits in eval mode at each evaluation (Ioffe & Szegedy, Fig. 1); ${longNote}.`,
    }),
  };
}
