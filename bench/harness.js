// The measuring loop shared by bench/run.mjs and bench/peers/run.mjs: prepare an implementation on a
// workload, run it once and check its outputs against the float64 reference, and only then time it
// with tinybench (or, for a peer in another process, let it time itself). One progress line per
// task goes to stderr.
import path from "node:path";
import { fileURLToPath } from "node:url";
import v8 from "node:v8";
import vm from "node:vm";
import { Bench } from "tinybench";
import { check, workload as workloadById } from "./workloads.js";

/**
 * An implementation under test.
 * @typedef {object} Impl
 * @property {string} id
 * @property {string} label
 * @property {string} group        'js' | 'wasm-batchnorm' | 'yardstick' | 'peer'
 * @property {boolean} [pristine]  pure JS: measured before anything detaches an ArrayBuffer (see PRISTINE_NOTE)
 * @property {string} [note]
 * @property {(w: import('./workloads.js').Workload, op: string) => true | string} supports  true, or why not
 * @property {(w: import('./workloads.js').Workload, op: string) => Prepared | Promise<Prepared>} prepare
 *
 * @typedef {object} Prepared
 * @property {() => unknown} [run]   one call (sync or async); timed by tinybench
 * @property {(o: TimingOptions) => Promise<number[]>} [time]  instead of run: samples in ms, timed elsewhere
 * @property {() => Record<string, ArrayLike<number>> | Promise<Record<string, ArrayLike<number>>>} outputs
 *   the outputs of the last call (y or dx, and any of mean, invstd, runningMean, runningVar, dweight, dbias)
 * @property {() => Promise<unknown> | unknown} [once]  the checked call when it differs from run (default run)
 * @property {{ runningVar?: 'unbiased' | 'biased' }} [semantics]
 * @property {() => void} [dispose]
 *
 * @typedef {{ time: number, iterations: number, warmupTime: number, warmupIterations: number, warmup?: boolean }} TimingOptions
 */

export const PRISTINE_NOTE =
  "Pure-JS implementations run first, before any WebAssembly memory grows: growing a wasm memory detaches its old ArrayBuffer, after which V8 guards every typed-array access in the process and plain JS loops run slower (measured separately as 'detach penalty').";

export const QUICK = { time: 150, iterations: 5, warmupTime: 40, warmupIterations: 2 };
export const FULL = { time: 1000, iterations: 20, warmupTime: 250, warmupIterations: 5 };

/** `gc()` if it can be had without a command-line flag, else null. */
export function exposeGc() {
  if (typeof globalThis.gc === "function") return globalThis.gc;
  try {
    v8.setFlagsFromString("--expose-gc");
    const gc = vm.runInNewContext("gc");
    return typeof gc === "function" ? gc : null;
  } catch {
    return null;
  }
}

const gc = exposeGc();

/** Median of numbers (sorted copy). */
export function median(values) {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const fmtMs = (ms) => (ms >= 100 ? ms.toFixed(1) : ms >= 10 ? ms.toFixed(2) : ms.toFixed(3));

export class Runner {
  /**
   * @param {{ timing: TimingOptions, total?: number, log?: (line: string) => void }} o
   */
  constructor({ timing, total = 0, log = (line) => process.stderr.write(`${line}\n`) }) {
    this.timing = timing;
    this.total = total;
    this.done = 0;
    this.log = log;
    /** @type {object[]} */
    this.results = [];
  }

  /**
   * Checks, then times, one implementation on one workload and op; records and returns the result.
   * @param {Impl} impl
   * @param {import('./workloads.js').Workload} w
   * @param {string} op   'train' | 'infer' | 'backward' | 'copy'
   * @param {{ phase?: string, record?: boolean }} [o]
   */
  async measure(impl, w, op, { phase = "main", record = true } = {}) {
    const r = { workload: w.id, op, impl: impl.id, label: impl.label, group: impl.group, phase, status: "ok" };
    const tag = `${w.id} ${op.padEnd(8)} ${impl.id.padEnd(16)}`;
    const supported = impl.supports(w, op);
    if (supported !== true) {
      r.status = "n/a";
      r.reason = supported;
      if (record) this.results.push(r);
      return r;
    }
    this.done++;
    const counter = this.total ? `[${String(this.done).padStart(String(this.total).length)}/${this.total}]` : `[${this.done}]`;
    /** @type {Prepared | undefined} */
    let prepared;
    const started = performance.now();
    try {
      gc?.();
      prepared = await impl.prepare(w, op);
      const t0 = performance.now();
      await (prepared.once ?? prepared.run)?.();
      const firstMs = performance.now() - t0;
      const outputs = await prepared.outputs();
      const c = op === "copy" ? checkCopy(w, outputs) : check(w, op, outputs, prepared.semantics);
      r.check = { error: c.error, fields: c.fields };
      if (!c.ok) {
        r.status = "wrong";
        r.reason = c.message;
        this.log(`${counter} ${tag} WRONG, not timed: ${c.message}`);
      } else {
        const timing = budget(this.timing, firstMs);
        const samples = prepared.time ? await prepared.time(timing) : await this.tinybench(prepared.run, timing);
        Object.assign(r, summarize(samples));
        this.log(
          `${counter} ${tag} ${fmtMs(r.medianMs).padStart(8)} ms ±${r.rme.toFixed(1)}% (n=${r.samples}) check ${formatError(r.check.error)}  [${((performance.now() - started) / 1000).toFixed(1)} s]`,
        );
      }
    } catch (e) {
      r.status = "failed";
      r.reason = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
      this.log(`${counter} ${tag} FAILED: ${r.reason}`);
    } finally {
      try {
        prepared?.dispose?.();
      } catch {
        // a failed dispose does not change the result
      }
    }
    if (record) this.results.push(r);
    return r;
  }

  /** @returns {Promise<number[]>} latency samples in ms */
  async tinybench(fn, timing = this.timing) {
    const bench = new Bench({ ...timing, throws: true, retainSamples: true });
    bench.add("task", fn);
    await bench.run();
    const result = bench.tasks[0].result;
    if (result.state !== "completed") throw result.error ?? new Error(`tinybench: ${result.state}`);
    return [...result.latency.samples];
  }
}

/**
 * The timing options for a task whose checked (first) call took `firstMs`: unchanged, except that a
 * task so slow that its minimum iterations would take over 4x the time budget gets fewer samples
 * (at least 3) and one warmup call (none if the checked call alone took longer than the budget:
 * it was the warmup), so one very slow peer cannot stretch a run by minutes.
 * @param {TimingOptions} timing
 */
export function budget(timing, firstMs) {
  if (firstMs * timing.iterations <= 4 * timing.time) return timing;
  const iterations = Math.max(3, Math.min(timing.iterations, Math.ceil((4 * timing.time) / firstMs)));
  // slower than the whole time budget: the checked call was its warmup
  return { ...timing, iterations, warmupIterations: 1, warmupTime: 0, warmup: firstMs < timing.time };
}

/** Median, spread and relative margin of error of latency samples (ms). */
export function summarize(samples) {
  const n = samples.length;
  const mean = samples.reduce((a, b) => a + b, 0) / n;
  const sd = n > 1 ? Math.sqrt(samples.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1)) : 0;
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    medianMs: median(sorted),
    meanMs: mean,
    minMs: sorted[0],
    p75Ms: sorted[Math.min(n - 1, Math.floor(0.75 * n))],
    // 95% margin of error of the mean, in percent (normal approximation)
    rme: n > 1 ? (100 * 1.96 * sd) / Math.sqrt(n) / mean : 0,
    samples: n,
  };
}

/** The copy yardstick must reproduce x exactly. */
function checkCopy(w, outputs) {
  const { x, y } = outputs;
  let same = x.length === y.length;
  for (let i = 0; same && i < x.length; i++) same = x[i] === y[i] || (Number.isNaN(x[i]) && Number.isNaN(y[i]));
  return { ok: same, error: same ? 0 : NaN, fields: { y: same ? 0 : NaN }, message: same ? "" : "copy differs from source" };
}

export function formatError(e) {
  if (e === undefined) return "-";
  if (Number.isNaN(e)) return "NaN";
  return e === 0 ? "0" : e.toExponential(1);
}

/**
 * The task list of a run: every (workload, op) pair selected, in order.
 * @param {{ workloads: string[], ops: string[], quick: boolean }} sel
 */
export function plan(sel) {
  const pairs = [];
  for (const id of sel.workloads) {
    const w = workloadById(id);
    for (const op of sel.ops) {
      if (sel.quick && !w.quickOps.includes(op)) continue;
      pairs.push({ w, op });
    }
  }
  return pairs;
}

/**
 * Parses the command line shared by both runners.
 * --full, --workloads=S1,S3, --ops=train,infer,backward, --impls=a,b, --time=ms, --out=path, --save
 */
export function parseArgs(argv, defaults) {
  const o = { full: false, workloads: null, ops: null, impls: null, time: null, out: null, save: false, help: false, ...defaults };
  for (const arg of argv) {
    const [k, v] = arg.includes("=") ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)] : [arg, ""];
    if (k === "--full") o.full = true;
    else if (k === "--quick") o.full = false;
    else if (k === "--workloads") o.workloads = v.split(",").filter(Boolean);
    else if (k === "--ops") o.ops = v.split(",").filter(Boolean);
    else if (k === "--impls") o.impls = v.split(",").filter(Boolean);
    else if (k === "--time") o.time = Number(v);
    else if (k === "--out") o.out = v;
    else if (k === "--save") o.save = true;
    else if (k === "--help" || k === "-h") o.help = true;
    else throw new Error(`unknown argument ${arg} (try --help)`);
  }
  return o;
}

const RESULTS = fileURLToPath(new URL("results/", import.meta.url));

/**
 * Where a run writes its results: --out=dir; with --save, bench/results/ (tracked: the numbers the
 * README shows); otherwise bench/results/local/ (git-ignored), so a plain run leaves the tree clean.
 * A filtered --save is refused before anything runs: it would publish a partial run.
 */
export function resultsDir(args) {
  if (args.save && (args.workloads || args.ops || args.impls || args.time || args.out)) {
    throw new Error("--save publishes a complete run to bench/results/: drop --workloads, --ops, --impls, --time and --out");
  }
  return args.out ?? (args.save ? RESULTS : path.join(RESULTS, "local"));
}
