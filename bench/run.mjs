// npm run bench [-- --full] [--workloads=S1,S3] [--ops=train,infer,backward] [--impls=js-naive,simd-zero] [--time=ms]
//
// Batch normalization on five workloads (bench/workloads.js), three operations, six implementations
// side by side in one process: straightforward and tuned pure JS (bench/js-baselines.js), this
// library's scalar and SIMD backends through the copying and the zero-copy API, and a plain copy
// of the tensor as the memory-bandwidth yardstick. Every implementation is checked against the
// float64 reference before it is timed. Then: per-call API overhead on the small workloads, wasm
// memory in steady state, and the cost plain JS pays once wasm memory has grown.
// Writes latest.{json,svg,md} (partial.* for a filtered run) to bench/results/local/ (git-ignored),
// or with --save to bench/results/ (tracked, shown in the README); progress goes to stderr, the
// table to stdout.
import path from "node:path";
import { init } from "../dist/index.js";
import { FULL, PRISTINE_NOTE, QUICK, Runner, exposeGc, median, parseArgs, plan, resultsDir } from "./harness.js";
import { copyYardstick, copyingImpl, jsNaive, jsTuned, zeroCopyImpl, zeroCopySetup } from "./impls.js";
import { consoleTable, derive, environment, writeResults } from "./report.js";
import {
  EPS, MOMENTUM, OPS, TOLERANCE_DEFINITION, TRAFFIC_DEFINITION, WORKLOADS, bytesOf, channelsOf, check, countOf, lengthOf,
  workload as workloadById,
} from "./workloads.js";

const started = performance.now();
const args = parseArgs(process.argv.slice(2));
if (args.help) {
  console.log(`npm run bench [-- options]
  --full                 every op on every workload (quick: S4 inference only), 1 s per task (default: quick, < 1 min)
  --workloads=S1,S3      subset of ${WORKLOADS.map((w) => w.id).join(",")}
  --ops=train,infer      subset of ${OPS.map((o) => o.id).join(",")}
  --impls=a,b            subset of js-naive,js-tuned,scalar-copy,scalar-zero,simd-copy,simd-zero (copy always runs)
  --time=ms              tinybench time budget per task
  --save                 write bench/results/latest.* (tracked; a complete run only), not bench/results/local/
  --out=dir              where latest.{json,svg,md} go instead`);
  process.exit(0);
}
const outDir = resultsDir(args);

const full = args.full;
const timing = { ...(full ? FULL : QUICK), ...(args.time ? { time: args.time } : {}) };
const ALL_IMPLS = ["js-naive", "js-tuned", "scalar-copy", "scalar-zero", "simd-copy", "simd-zero"];
const implIds = args.impls ?? ALL_IMPLS;
for (const id of implIds) if (!ALL_IMPLS.includes(id)) throw new Error(`unknown implementation ${id}; expected one of ${ALL_IMPLS.join(", ")}`);
const workloadIds = args.workloads ?? WORKLOADS.map((w) => w.id);
const opIds = args.ops ?? OPS.map((o) => o.id);
const pairs = plan({ workloads: workloadIds, ops: opIds, quick: !full });
const workloads = workloadIds.map(workloadById);

const jsImpls = [jsNaive, jsTuned].filter((m) => implIds.includes(m.id));
const wasmIds = implIds.filter((id) => !id.startsWith("js-"));
const backendNames = ["scalar", "simd"].filter((b) => wasmIds.some((id) => id.startsWith(b)));
// After wasm memory has grown, the JS baselines again: all pairs (full) or two (quick: S2 train and infer if selected).
const forwardPairs = pairs.filter((p) => p.op !== "backward");
const detachPairs = full ? pairs : (forwardPairs.some((p) => p.w.id === "S2") ? forwardPairs.filter((p) => p.w.id === "S2") : forwardPairs).slice(0, 2);
const runner = new Runner({
  timing,
  total: pairs.length * jsImpls.length + workloads.length + pairs.length * wasmIds.length + detachPairs.length * jsImpls.length,
});
const gc = exposeGc();
const log = (line) => process.stderr.write(`${line}\n`);
log(`wasm-batchnorm bench: ${full ? "full" : "quick"} run, ${runner.total} tasks, tinybench time ${timing.time} ms / min ${timing.iterations} iterations per task${gc ? "" : " (gc() unavailable)"}`);

// Phase 1: pure JS, before any wasm memory grows (PRISTINE_NOTE).
for (const { w, op } of pairs) for (const impl of jsImpls) await runner.measure(impl, w, op, { phase: "pristine" });

// Phase 2: the yardstick and the library, workload by workload.
const backends = {};
for (const name of backendNames.length ? backendNames : ["simd"]) {
  try {
    backends[name] = await init({ backend: name });
  } catch (e) {
    log(`backend ${name} unavailable: ${e.message}`);
  }
}
const yardstickBackend = backends.simd ?? backends.scalar;
const colors = { "scalar-copy": "#9ecae1", "scalar-zero": "#2171b5", "simd-copy": "#fdae6b", "simd-zero": "#d94801" };
const wasmImpls = [];
for (const id of wasmIds) {
  const [name, api] = id.split("-");
  const bn = backends[name];
  if (!bn) {
    wasmImpls.push({ id, label: `wasm-batchnorm ${name}, ${api === "copy" ? "copying" : "zero-copy"} API`, group: "wasm-batchnorm", supports: () => `backend ${name} unavailable` });
  } else wasmImpls.push(api === "copy" ? copyingImpl(bn, colors[id]) : zeroCopyImpl(bn, colors[id]));
}
const yardstick = copyYardstick(yardstickBackend);
const memorySnapshots = [];
for (const w of workloads) {
  await runner.measure(yardstick, w, "copy", { phase: "main" });
  for (const { op } of pairs.filter((p) => p.w === w)) for (const impl of wasmImpls) await runner.measure(impl, w, op);
  memorySnapshots.push({ after: w.id, ...Object.fromEntries(Object.entries(backends).map(([k, bn]) => [k, bn.memoryBytes])) });
}

// ---------------------------------------------------------------------------------------------
// Per-call API overhead on the small workloads (S3, S4).
//
// Two measures, timed interleaved (round-robin batches, median per call) so drift hits all alike:
//  - engine-level: the same kernels called through the library's internal pointer-level path
//    (Backend's TypeScript-private `engine`: scratch + forward/backward on the same WasmTensors),
//    skipping argument validation, geometry, result arrays and bookkeeping. overhead = API - engine.
//    Best effort: internals may change; the path is checked against the reference before use.
//  - tiny call: the same API call on a tiny tensor with the same channel count ([2, C] or
//    [1, C, 1, 2]): fixed per-call costs plus the per-channel work, an upper bound on overhead.

async function enginePath(bn, w, op, z) {
  const engine = bn.engine;
  if (!engine || typeof engine.forward !== "function" || typeof engine.backward !== "function" || typeof engine.scratch !== "function") {
    return { reason: "Backend.engine (internal) not found" };
  }
  let geometry;
  try {
    ({ geometry } = await import("../dist/validate.js"));
  } catch (e) {
    return { reason: `dist/validate.js: ${e.message}` };
  }
  const t = z.tensors;
  const g = geometry(w.shape, w.layout, lengthOf(w));
  let fn;
  if (op === "backward") {
    const mean64 = Float64Array.from(t.mean.data);
    const invstd64 = Float64Array.from(t.invstd.data);
    fn = () => engine.backward(t.dy.ptr, t.x.ptr, t.out.ptr, g, engine.scratch(g.c), t.weight, mean64, invstd64, true);
  } else {
    const running = { mean: t.runningMean, variance: t.runningVar };
    const train = op === "train";
    fn = () => engine.forward(t.x.ptr, t.out.ptr, g, engine.scratch(g.c), t.weight, t.bias, EPS, train, running, train ? MOMENTUM : null);
  }
  try {
    t.out.data.fill(0);
    fn();
    const out = op === "backward" ? { dx: t.out.data } : { y: t.out.data };
    const c = check(w, op, out);
    if (!c.ok) return { reason: `engine-level path gave a wrong answer (${c.message})` };
  } catch (e) {
    return { reason: `engine-level path threw: ${e.message}` };
  }
  return { fn };
}

/**
 * Per-call ms of each fn over `rounds` round-robin batches of ~targetMs (order reversed every other
 * round), after a warm-up; every fn runs the same number of calls per batch (calibrated on the
 * first, the API call), so their batches are alike. Returns the per-round times of each fn.
 */
function interleaved(fns, rounds, targetMs) {
  for (const f of fns) for (let i = 0; i < 20; i++) f();
  let count = 1;
  for (;;) {
    const t0 = performance.now();
    for (let i = 0; i < count; i++) fns[0]();
    const dt = performance.now() - t0;
    if (dt >= targetMs / 2 || count >= 1 << 20) {
      count = Math.max(1, Math.round((count * targetMs) / Math.max(dt, 1e-3)));
      break;
    }
    count *= 2;
  }
  const per = fns.map(() => []);
  const order = fns.map((_, j) => j);
  for (let r = 0; r < rounds; r++) {
    for (const j of r % 2 ? [...order].reverse() : order) {
      const f = fns[j];
      const t0 = performance.now();
      for (let i = 0; i < count; i++) f();
      per[j].push((performance.now() - t0) / count);
    }
  }
  return per;
}

/** Quartiles of numbers. */
function quartiles(values) {
  const s = [...values].sort((a, b) => a - b);
  const at = (q) => s[Math.min(s.length - 1, Math.max(0, Math.round(q * (s.length - 1))))];
  return [at(0.25), at(0.5), at(0.75)];
}

const overhead = [];
const overheadBackend = backends.simd ?? backends.scalar;
for (const { w, op } of pairs.filter((p) => p.w.id === "S3" || p.w.id === "S4")) {
  if (!overheadBackend) break;
  const z = zeroCopySetup(overheadBackend, w, op);
  const c = channelsOf(w);
  const tinyShape = w.shape.length === 2 ? [2, c] : [1, c, 1, 2];
  const tinyW = { ...w, id: `${w.id}-tiny`, name: `[${tinyShape.join(", ")}]`, shape: tinyShape };
  const zt = zeroCopySetup(overheadBackend, tinyW, op);
  try {
    z.call();
    zt.call();
    const tinyCheck = check(tinyW, op, zt.outputs());
    const engine = await enginePath(overheadBackend, w, op, z);
    const fns = [z.call, zt.call, ...(engine.fn ? [engine.fn] : [])];
    const [apiRounds, tinyRounds, engineRounds] = interleaved(fns, full ? 101 : 40, full ? 10 : 3);
    const [apiMs, tinyMs] = [median(apiRounds), median(tinyRounds)];
    const engineMs = engineRounds && median(engineRounds);
    // overhead: median of the paired per-round differences (API batch vs the adjacent engine batch), with their quartiles as the noise
    const row = {
      workload: w.id, op, backend: overheadBackend.backend, apiMs, tinyShape, tinyMs, tinyPct: (100 * tinyMs) / apiMs,
      tinyCheck: tinyCheck.ok ? "ok" : tinyCheck.message,
    };
    if (engine.fn) {
      const [q1, overheadMs, q3] = quartiles(apiRounds.map((a, i) => a - engineRounds[i]));
      Object.assign(row, { engineMs, overheadMs, overheadPct: (100 * overheadMs) / apiMs, overheadIqrMs: [q1, q3] });
    }
    else row.engineUnavailable = engine.reason;
    overhead.push(row);
    log(`overhead ${w.id} ${op}: API ${apiMs.toFixed(4)} ms, ${engine.fn ? `engine-level ${engineMs.toFixed(4)} ms (overhead ${row.overheadPct.toFixed(1)}%), ` : ""}tiny ${tinyMs.toFixed(4)} ms`);
  } finally {
    z.free();
    zt.free();
  }
}

// ---------------------------------------------------------------------------------------------
// Memory: wasm memory after each workload (it never shrinks), and steady state on S1 (or the first
// workload): many calls of every op through each API must not grow wasm memory; JS heap drift is
// measured after gc().

const memoryBackend = backends.simd ?? backends.scalar;
const memW = workloads.find((w) => w.id === "S1") ?? workloads[0];
const steady = [];
if (memoryBackend) {
  const callsPerOp = full ? 200 : 40;
  for (const api of ["zero-copy", "copying"]) {
    for (const o of OPS) {
      const setup = api === "zero-copy" ? zeroCopySetup(memoryBackend, memW, o.id) : copyingImpl(memoryBackend).prepare(memW, o.id);
      const call = setup.call ?? setup.run;
      try {
        call();
        gc?.();
        const wasm0 = memoryBackend.memoryBytes;
        const heap0 = process.memoryUsage().heapUsed;
        for (let i = 0; i < callsPerOp; i++) call();
        gc?.();
        const wasm1 = memoryBackend.memoryBytes;
        const heap1 = process.memoryUsage().heapUsed;
        steady.push({
          workload: memW.id, api, op: o.id, backend: memoryBackend.backend, calls: callsPerOp,
          wasmBefore: wasm0, wasmAfter: wasm1, wasmGrowth: wasm1 - wasm0, heapDrift: heap1 - heap0, gc: !!gc,
        });
      } finally {
        setup.free?.();
      }
    }
  }
  log(`memory ${memW.id}: wasm growth over ${callsPerOp} calls per API and op: ${steady.map((r) => `${r.api} ${r.op} ${r.wasmGrowth} B`).join(", ")}`);
}

// ---------------------------------------------------------------------------------------------
// Detach penalty: the pure-JS baselines again, now that wasm memory has grown (if it has).

const detachPenalty = [];
const grown = Object.values(backends).some((bn) => bn.memoryBytes > 16 * 2 ** 20);
if (grown) {
  for (const { w, op } of detachPairs) {
    for (const impl of jsImpls) {
      const before = runner.results.find((r) => r.workload === w.id && r.op === op && r.impl === impl.id && r.status === "ok");
      const after = await runner.measure(impl, w, op, { phase: "after-detach", record: false });
      if (before && after.status === "ok") {
        detachPenalty.push({ workload: w.id, op, impl: impl.id, pristineMs: before.medianMs, afterMs: after.medianMs, ratio: after.medianMs / before.medianMs });
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Report

const implList = [...jsImpls, ...wasmImpls, yardstick];
const fmt = (ms) => (ms < 0.1 ? `${(ms * 1000).toFixed(1)} µs` : `${ms.toFixed(3)} ms`);
const mib = (b) => `${(b / 2 ** 20).toFixed(0)} MiB`;
const sections = [];
if (overhead.length) {
  sections.push({
    title: "Per-call API overhead (zero-copy API, small workloads)",
    markdown: [
      `Engine-level: the same kernels through the library's internal pointer-level path (Backend's private engine: no argument validation, result arrays or bookkeeping). Overhead = API call − engine-level call, the median of paired differences between adjacent batches (quartiles in brackets: the noise). Tiny: the same API call on a tiny tensor with the same channel count (fixed per-call costs + per-channel work, an upper bound). Interleaved batches of equal call counts, ${overheadBackend.backend} backend.`,
      "",
      "| workload | op | API call | engine-level | overhead [quartiles] | % of call | tiny call | tiny / API |",
      "|---|---|---:|---:|---:|---:|---:|---:|",
      ...overhead.map((r) =>
        `| ${r.workload} | ${r.op} | ${fmt(r.apiMs)} | ${r.engineMs === undefined ? "n/a" : fmt(r.engineMs)} | ${r.overheadMs === undefined ? "n/a" : `${fmt(r.overheadMs)} [${fmt(r.overheadIqrMs[0])}, ${fmt(r.overheadIqrMs[1])}]`} | ${r.overheadPct === undefined ? "n/a" : `${r.overheadPct.toFixed(1)}%`} | ${fmt(r.tinyMs)} [${r.tinyShape.join("×")}] | ${r.tinyPct.toFixed(1)}% |`),
      ...[...new Set(overhead.filter((r) => r.engineUnavailable).map((r) => r.engineUnavailable))].map((m) => `\nengine-level path unavailable: ${m}`),
    ],
  });
}
if (memoryBackend) {
  const s1 = memorySnapshots.find((m) => m.after === memW.id);
  sections.push({
    title: "Memory",
    markdown: [
      `wasm memory per backend after each workload's tasks (it never shrinks, so the value after ${memW.id} is its peak while ${memW.id} ran${workloads[0] === memW ? "" : `, including earlier workloads`}): ${memorySnapshots.map((m) => `${m.after}: ${Object.entries(m).filter(([k]) => k !== "after").map(([k, v]) => `${k} ${mib(v)}`).join(", ")}`).join("; ")}.`,
      ...(s1 ? [`Peak wasm memory for ${memW.id} (${mib(bytesOf(memW))} tensor, zero-copy and copying API tasks): ${Object.entries(s1).filter(([k]) => k !== "after").map(([k, v]) => `${k} ${mib(v)}`).join(", ")}.`] : []),
      "",
      `Steady state: after one warm-up call, ${steady[0]?.calls} more calls of each op through each API (${memoryBackend.backend} backend), wasm memory (bn.memoryBytes) before and after, and JS heap drift (process.memoryUsage().heapUsed${gc ? " after gc()" : ", gc() unavailable"}).`,
      "",
      "| workload | API | op | calls | wasm memory before → after | growth | JS heap drift |",
      "|---|---|---|---:|---:|---:|---:|",
      ...steady.map((r) => `| ${r.workload} | ${r.api} | ${r.op} | ${r.calls} | ${mib(r.wasmBefore)} → ${mib(r.wasmAfter)} | ${r.wasmGrowth} B | ${(r.heapDrift / 1024).toFixed(1)} KiB |`),
    ],
  });
}
if (detachPenalty.length) {
  sections.push({
    title: "Detach penalty for plain JS",
    markdown: [
      "The pure-JS rows above ran before any wasm memory grew. Once a WebAssembly.Memory grows (detaching its old ArrayBuffer), V8 guards typed-array accesses in the whole process; the same JS code measured again afterwards:",
      "",
      "| workload | op | implementation | before | after | slowdown |",
      "|---|---|---|---:|---:|---:|",
      ...detachPenalty.map((r) => `| ${r.workload} | ${r.op} | ${r.impl} | ${fmt(r.pristineMs)} | ${fmt(r.afterMs)} | ${r.ratio.toFixed(2)}× |`),
    ],
  });
} else if (!grown) {
  sections.push({ title: "Detach penalty for plain JS", markdown: ["Not measured: no wasm memory grew in this run."] });
}

const json = derive({
  kind: "main",
  title: "wasm-batchnorm benchmark",
  environment: environment(),
  settings: {
    mode: full ? "full" : "quick",
    timing,
    threads: "one thread: Node's main thread, single-threaded wasm",
    baseline: "js-naive",
    trafficDefinition: TRAFFIC_DEFINITION,
    toleranceDefinition: TOLERANCE_DEFINITION,
    pristineNote: PRISTINE_NOTE,
    gc: !!gc,
  },
  workloads: workloads.map((w) => ({ ...w, length: lengthOf(w), channels: channelsOf(w), count: countOf(w), bytes: bytesOf(w) })),
  ops: OPS,
  impls: implList.map(({ id, label, short, group, note, color }) => ({ id, label, short, group, note, color })),
  results: runner.results,
  overhead,
  memory: { snapshots: memorySnapshots, steady },
  detachPenalty,
  sections,
});
json.durationSeconds = Math.round((performance.now() - started) / 100) / 10;

console.log(consoleTable(json));
for (const s of sections) console.log(`\n${s.title}\n${s.markdown.filter((l) => !/^\|[-|:]+\|$/.test(l)).join("\n")}`);
// a filtered run does not replace a complete one: it writes partial.*
const filtered = Boolean(args.workloads || args.ops || args.impls || args.time);
const files = writeResults(outDir, filtered ? "partial" : "latest", json);
console.log(`\nwrote ${Object.values(files).map((f) => path.relative(process.cwd(), f)).join(", ")} in ${json.durationSeconds} s`);
