// npm run bench [-- --full] [--workloads=S1,S3] [--ops=train,infer,backward] [--impls=js-naive,simd-zero] [--time=ms]
//
// Batch normalization on five workloads (bench/workloads.js), three operations, side by side in one
// process: straightforward and tuned pure JS (bench/js-baselines.js), this library's scalar and SIMD
// backends through the copying and the zero-copy API, on 1 thread and (SIMD) on 2, 4 ... threads up to
// the machine's cores, and a plain copy of the tensor as the memory-bandwidth yardstick. Every
// implementation is checked against the float64 reference before it is timed. Then: the speed-up of
// T threads over 1 (paired, bench/threads.js, with a tiny [2, 64] call), the async API against the
// sync one and a 1 ms ticker's lateness while async calls run (where the build has the async API),
// the machine's copy bandwidth on 1 and more threads (bench/bandwidth.js), fused BN+ReLU against
// plain BN and against BN followed by a separate ReLU pass (bench/relu.js), per-call API overhead on
// the small workloads, wasm memory in steady state, and the cost plain JS pays once wasm memory has grown.
// Writes latest.{json,svg,md} and latest-threads.svg (partial.* for a filtered run) to
// bench/results/local/ (git-ignored), or with --save to bench/results/ (tracked, shown in the README);
// progress goes to stderr, the tables to stdout.
import os from "node:os";
import path from "node:path";
import { Backend, init } from "../dist/index.js";
import { copyBandwidth } from "./bandwidth.js";
import { FULL, PRISTINE_NOTE, QUICK, Runner, exposeGc, interleaved, median, parseArgs, plan, quartiles, resultsDir } from "./harness.js";
import { copyYardstick, copyingImpl, jsNaive, jsTuned, zeroCopyImpl, zeroCopySetup } from "./impls.js";
import { RELU_TARGET, RELU_VARIANTS, reluRows } from "./relu.js";
import { consoleTable, derive, environment, fmtTime, writeResults } from "./report.js";
import { ASYNC_TARGET, THREAD_TARGETS, TICKER_TARGET_MS, asyncOverSync, cpuMeter, threadCounts, threadScaling, tickerRows } from "./threads.js";
import {
  EPS, MOMENTUM, OPS, TINY, TOLERANCE_DEFINITION, TRAFFIC_DEFINITION, WORKLOADS, bytesOf, channelsOf, check, countOf, lengthOf,
  workload as workloadById,
} from "./workloads.js";

const started = performance.now();
const loadAtStart = os.loadavg();
const args = parseArgs(process.argv.slice(2));
const COUNTS = threadCounts();
const hasAsync = typeof Backend.prototype.batchNormAsync === "function";
const threaded = COUNTS.slice(1);
const ALL_IMPLS = [
  "js-naive", "js-tuned", "scalar-copy", "scalar-zero", "simd-copy", "simd-zero",
  ...threaded.flatMap((t) => [`simd-copy-t${t}`, `simd-zero-t${t}`]),
  ...(hasAsync ? ["simd-zero-async", ...threaded.map((t) => `simd-zero-t${t}-async`)] : []),
];
// backend, API, threads (1 without a suffix), async
const LIBRARY_ID = /^(scalar|simd)-(copy|zero)(?:-t(\d+))?(-async)?$/;
if (args.help) {
  console.log(`npm run bench [-- options]
  --full                 every op on every workload (quick: S4 inference only), 1 s per task (default: quick, about 2 min)
  --workloads=S1,S3      subset of ${[...WORKLOADS, TINY].map((w) => w.id).join(",")} (the threads section adds ${TINY.id} unless filtered)
  --ops=train,infer      subset of ${OPS.map((o) => o.id).join(",")}
  --impls=a,b            subset of ${ALL_IMPLS.join(",")} (copy always runs);
                         also <scalar|simd>-<copy|zero>[-t<threads>][-async], e.g. scalar-zero-t2
  --time=ms              tinybench time budget per task
  --save                 write bench/results/latest.* (tracked; a complete run only), not bench/results/local/
  --out=dir              where latest.{json,svg,md} go instead`);
  process.exit(0);
}
const outDir = resultsDir(args);

const full = args.full;
const timing = { ...(full ? FULL : QUICK), ...(args.time ? { time: args.time } : {}) };
const implIds = args.impls ?? ALL_IMPLS;
for (const id of implIds) {
  const m = LIBRARY_ID.exec(id);
  if (!(id === "js-naive" || id === "js-tuned" || (m && (m[3] === undefined || Number(m[3]) >= 2)))) {
    throw new Error(`unknown implementation ${id}; expected one of ${ALL_IMPLS.join(", ")} or <scalar|simd>-<copy|zero>[-t<2 or more>][-async]`);
  }
}
const workloadIds = args.workloads ?? WORKLOADS.map((w) => w.id);
const opIds = args.ops ?? OPS.map((o) => o.id);
const pairs = plan({ workloads: workloadIds, ops: opIds, quick: !full });
const workloads = workloadIds.map(workloadById);

const jsImpls = [jsNaive, jsTuned].filter((m) => implIds.includes(m.id));
const wasmIds = implIds.filter((id) => !id.startsWith("js-"));
// After wasm memory has grown, the JS baselines again: all pairs (full) or two (quick: S2 train and infer if selected).
const forwardPairs = pairs.filter((p) => p.op !== "backward");
const detachPairs = full ? pairs : (forwardPairs.some((p) => p.w.id === "S2") ? forwardPairs.filter((p) => p.w.id === "S2") : forwardPairs).slice(0, 2);
const runner = new Runner({
  timing,
  total: pairs.length * jsImpls.length + workloads.length + pairs.length * wasmIds.length + detachPairs.length * jsImpls.length,
});
const gc = exposeGc();
const log = (line) => process.stderr.write(`${line}\n`);
log(`wasm-batchnorm bench: ${full ? "full" : "quick"} run, ${runner.total} tasks, tinybench time ${timing.time} ms / min ${timing.iterations} iterations per task${gc ? "" : " (gc() unavailable)"}; load average ${loadAtStart.map((l) => l.toFixed(2)).join(", ")}`);

// Phase 1: pure JS, before any wasm memory grows (PRISTINE_NOTE).
for (const { w, op } of pairs) for (const impl of jsImpls) await runner.measure(impl, w, op, { phase: "pristine" });

// Phase 2: the yardstick and the library, workload by workload. Each (backend, threads) pair is
// its own backend with its own memory; 1 thread is asked for explicitly (the default is 'auto').
const backends = new Map();
/** The backend `name` on `threads` threads, loaded once; null (logged) if it cannot run that. */
async function backendFor(name, threads) {
  const key = `${name}/${threads}`;
  if (!backends.has(key)) {
    let bn = null;
    try {
      bn = await init({ backend: name, threads });
      if (bn.threads !== threads) throw new Error(`init({ threads: ${threads} }) runs ${bn.threads}`);
    } catch (e) {
      log(`backend ${key} unavailable: ${e.message}`);
      bn = null;
    }
    backends.set(key, bn);
  }
  return backends.get(key);
}
const colors = {
  "scalar-copy": "#9ecae1", "scalar-zero": "#2171b5", "simd-copy": "#fdae6b", "simd-zero": "#d94801",
  "simd-copy-t2": "#fc9272", "simd-zero-t2": "#a50f15", "simd-copy-t4": "#bcbddc", "simd-zero-t4": "#54278f",
  "simd-zero-async": "#74c476", "simd-zero-t2-async": "#006d2c",
};
/** The library Impl an id names (see LIBRARY_ID), or one that says why it cannot run. */
async function implFor(id) {
  const [, name, api, t, async] = LIBRARY_ID.exec(id);
  const threads = Number(t ?? 1);
  const bn = await backendFor(name, threads);
  const o = { async: Boolean(async) };
  if (!bn) {
    const why = `backend ${name} on ${threads} thread${threads > 1 ? "s" : ""} unavailable`;
    return { id, label: `wasm-batchnorm ${name}, ${api === "copy" ? "copying" : "zero-copy"} API, ${threads} threads`, group: "wasm-batchnorm", threads, supports: () => why };
  }
  return api === "copy" ? copyingImpl(bn, colors[id], o) : zeroCopyImpl(bn, colors[id], o);
}
const wasmImpls = [];
for (const id of wasmIds) wasmImpls.push(await implFor(id));
const simd1 = await backendFor("simd", 1);
const yardstickBackend = simd1 ?? (await backendFor("scalar", 1));
const yardstick = copyYardstick(yardstickBackend);
/** [key, backend] of every backend loaded so far ("simd/1", "simd/2", ...). */
const liveBackends = () => [...backends].filter(([, bn]) => bn);
const memorySnapshots = [];
for (const w of workloads) {
  await runner.measure(yardstick, w, "copy", { phase: "main" });
  for (const { op } of pairs.filter((p) => p.w === w)) for (const impl of wasmImpls) await runner.measure(impl, w, op);
  memorySnapshots.push({ after: w.id, ...Object.fromEntries(liveBackends().map(([k, bn]) => [k, bn.memoryBytes])) });
}

// ---------------------------------------------------------------------------------------------
// Threads: each threaded implementation against its 1-thread twin on every selected workload and
// op (quick runs too) plus the tiny [2, 64] call, paired in interleaved batches; the async API
// against the sync one on S1; a 1 ms ticker while twenty async S1 calls run; copy bandwidth.

const threadTiming = full ? { rounds: 101, targetMs: 10 } : { rounds: 40, targetMs: 4 };
const threadPairs = [...plan({ workloads: workloadIds, ops: opIds, quick: false }), ...(args.workloads ? [] : opIds.map((op) => ({ w: TINY, op })))];
const libraryId = (name, api, threads, async) => `${name}-${api}${threads > 1 ? `-t${threads}` : ""}${async ? "-async" : ""}`;
const parsed = wasmIds.map((id) => {
  const [, name, api, t, async] = LIBRARY_ID.exec(id);
  return { id, name, api, threads: Number(t ?? 1), async: Boolean(async) };
});
// one group per backend and API that has a threaded sync implementation, its 1-thread twin first
// (async implementations are measured against their sync twins below)
const groupKeys = [...new Set(parsed.filter((p) => p.threads > 1 && !p.async).map((p) => libraryId(p.name, p.api, 1, false)))]
  .sort((a, b) => Number(a.includes("-copy")) - Number(b.includes("-copy")));
const threadGroups = [];
for (const key of groupKeys) {
  const members = parsed.filter((p) => p.threads > 1 && !p.async && libraryId(p.name, p.api, 1, false) === key).sort((a, b) => a.threads - b.threads);
  const impls = [await implFor(key), ...(await Promise.all(members.map((p) => implFor(p.id))))];
  const missing = impls.find((m) => !m.prepare);
  if (missing) log(`threads ${key}: skipped, ${missing.supports()}`);
  else threadGroups.push(impls);
}
const loadBeforeThreads = os.loadavg();
const cpu = cpuMeter();
const scaling = await threadScaling(threadGroups, threadPairs, { ...threadTiming, log });
const cpuDuringScaling = cpu();
log(`threads rows: cores busy on average with this process ${cpuDuringScaling.ownCores.toFixed(2)}, other processes ${cpuDuringScaling.otherCores.toFixed(2)}, stolen by the hypervisor ${cpuDuringScaling.stolenCores?.toFixed(2) ?? "n/a"}`);

const asyncIds = parsed.filter((p) => p.async);
const workloadS1 = workloads.find((w) => w.id === "S1");
const asyncRows = [];
let ticker = [];
if (asyncIds.length && workloadS1) {
  const twins = [];
  for (const p of asyncIds) twins.push([await implFor(libraryId(p.name, p.api, p.threads, false)), await implFor(p.id)]);
  const usable = twins.filter((pair) => pair.every((m) => m.prepare && m.supports(workloadS1, "train") === true));
  asyncRows.push(...(await asyncOverSync(usable, opIds.map((op) => ({ w: workloadS1, op })), { ...threadTiming, log })));
  const cases = usable.flatMap(([sync, async]) => [
    { id: async.id, label: `async calls, ${async.threads} thread${async.threads > 1 ? "s" : ""} (${async.id})`, impl: async },
    { id: sync.id, label: `sync calls, one event-loop turn between them, ${sync.threads} thread${sync.threads > 1 ? "s" : ""} (${sync.id})`, impl: sync },
  ]);
  if (cases.length) ticker = await tickerRows(cases, workloadS1, "train", { log });
}
const bandwidth = await copyBandwidth({ threads: COUNTS, rounds: full ? 31 : 11 });
log(`copy bandwidth (${(bandwidth.bytes / 1e6).toFixed(0)} MB): ${bandwidth.rows.map((r) => `${r.threads}T ${r.gbps.toFixed(1)} GB/s (${r.ratio.toFixed(2)}x)`).join(", ")}`);
let splitBytes = null;
try {
  ({ Executor: { splitBytes } } = await import("../dist/executor.js")); // internal: recorded to read the tiny and S4 rows by
} catch {
  // not fatal: the threshold is only context
}
const threadsResult = {
  counts: COUNTS,
  cores: os.availableParallelism(),
  names: Object.fromEntries(threadPairs.map(({ w }) => [w.id, w.name])),
  timing: threadTiming,
  splitBytes,
  loadAverage: { before: loadBeforeThreads, after: os.loadavg() },
  cpu: cpuDuringScaling,
  targets: THREAD_TARGETS,
  rows: scaling,
  async: { target: ASYNC_TARGET, rows: asyncRows, note: hasAsync ? null : "not measured: this build has no async API (bn.batchNormAsync)" },
  ticker: { targetMs: TICKER_TARGET_MS, workload: workloadS1?.id ?? null, op: "train", rows: ticker, note: ticker.length ? null : hasAsync ? "not measured: no async implementation or S1 selected" : "not measured: this build has no async API (bn.batchNormAsync)" },
  bandwidth,
};

// ---------------------------------------------------------------------------------------------
// Fused ReLU: every selected workload and op (quick runs too), SIMD zero-copy API on 1 thread, the
// variants in interleaved batches (bench/relu.js).

const reluBackend = simd1;
const relu = reluBackend ? await reluRows(reluBackend, plan({ workloads: workloadIds, ops: opIds, quick: false }), { ...threadTiming, log }) : [];

// ---------------------------------------------------------------------------------------------
// Per-call API overhead on the small workloads (S3, S4).
//
// Two measures, timed interleaved (round-robin batches, median per call) so drift hits all alike:
//  - engine-level: the same kernels called through the library's internal pointer-level path
//    (Backend's TypeScript-private `engine`: scratch + forward/backward on the same WasmTensors'
//    addresses),
//    skipping argument validation, geometry, result arrays and bookkeeping. overhead = API - engine.
//    Best effort: internals may change; the path is checked against the reference before use.
//  - tiny call: the same API call on a tiny tensor with the same channel count ([2, C] or
//    [1, C, 1, 2]): fixed per-call costs plus the per-channel work, an upper bound on overhead.

async function enginePath(bn, w, op, z) {
  const engine = bn.engine;
  if (!engine || ["forward", "backward", "scratch", "run"].some((f) => typeof engine[f] !== "function")) {
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
    fn = () => engine.run("bench", engine.backward(t.dy.ptr, t.x.ptr, t.out.ptr, g, engine.scratch(g.c), { weight: t.weight.ptr, mean: mean64, invstd: invstd64, training: true }));
  } else {
    const running = { mean: t.runningMean.ptr, variance: t.runningVar.ptr, biased: false };
    const train = op === "train";
    fn = () => engine.run("bench", engine.forward(t.x.ptr, t.out.ptr, g, engine.scratch(g.c), { weight: t.weight.ptr, bias: t.bias.ptr, eps: EPS, stats: train ? "batch" : "running", running, factor: train ? MOMENTUM : null }));
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

const overhead = [];
const overheadBackend = yardstickBackend;
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
    const [apiRounds, tinyRounds, engineRounds] = await interleaved(fns, full ? 101 : 40, full ? 10 : 3);
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

const memoryBackend = yardstickBackend;
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
const grown = liveBackends().some(([, bn]) => bn.memoryBytes > 16 * 2 ** 20);
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
        `| ${r.workload} | ${r.op} | ${fmtTime(r.apiMs)} | ${r.engineMs === undefined ? "n/a" : fmtTime(r.engineMs)} | ${r.overheadMs === undefined ? "n/a" : `${fmtTime(r.overheadMs)} [${fmtTime(r.overheadIqrMs[0])}, ${fmtTime(r.overheadIqrMs[1])}]`} | ${r.overheadPct === undefined ? "n/a" : `${r.overheadPct.toFixed(1)}%`} | ${fmtTime(r.tinyMs)} [${r.tinyShape.join("×")}] | ${r.tinyPct.toFixed(1)}% |`),
      ...[...new Set(overhead.filter((r) => r.engineUnavailable).map((r) => r.engineUnavailable))].map((m) => `\nengine-level path unavailable: ${m}`),
    ],
  });
}
if (relu.length) {
  const ratio = (r, id) => (r.ratio?.[id] ? `${r.ratio[id][1].toFixed(3)} [${r.ratio[id][0].toFixed(3)}, ${r.ratio[id][2].toFixed(3)}]` : "n/a");
  const ms = (r, id) => (r.ms?.[id] === undefined ? "n/a" : fmtTime(r.ms[id]));
  sections.push({
    title: "Fused ReLU (activation: 'relu')",
    markdown: [
      `${reluBackend.backend} backend, zero-copy API, 1 thread; median time per call of each variant, timed in interleaved batches, and the fused call's time over each other's (median of the per-round ratios, quartiles in brackets). Target: fused within ${Math.round((RELU_TARGET - 1) * 100)}% of plain BN (ratio <= ${RELU_TARGET}). Variants: ${Object.entries(RELU_VARIANTS).map(([k, v]) => `${k} = ${v}`).join("; ")}. Each variant is checked against the float64 reference first (through the ReLU: y clipped; backward for dy masked by the fused forward's own output).`,
      "",
      "| workload | op | fused | plain | + JS pass | + library pass | fused / plain [quartiles] | target | fused / (BN + JS pass) | fused / (BN + library pass) |",
      "|---|---|---:|---:|---:|---:|---:|---|---:|---:|",
      ...relu.map((r) =>
        r.status !== "ok"
          ? `| ${r.workload} | ${r.op} | ${r.status}: ${r.reason} | | | | | | | |`
          : `| ${r.workload} | ${r.op} | ${ms(r, "fused")} | ${ms(r, "plain")} | ${ms(r, "js")} | ${ms(r, "library")} | ${ratio(r, "plain")} | ${r.ratio.plain[1] <= RELU_TARGET ? "met" : "missed"} | ${ratio(r, "js")} | ${ratio(r, "library")} |`),
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
      ...detachPenalty.map((r) => `| ${r.workload} | ${r.op} | ${r.impl} | ${fmtTime(r.pristineMs)} | ${fmtTime(r.afterMs)} | ${r.ratio.toFixed(2)}× |`),
    ],
  });
} else if (!grown) {
  sections.push({ title: "Detach penalty for plain JS", markdown: ["Not measured: no wasm memory grew in this run."] });
}

const json = derive({
  kind: "main",
  title: "wasm-batchnorm benchmark",
  environment: environment(loadAtStart),
  settings: {
    mode: full ? "full" : "quick",
    timing,
    threads: `the library's rows without a thread count run init({ threads: 1 }) (single-threaded wasm on Node's main thread); 'T threads' rows run init({ threads: T }) (shared memory, the main thread and T - 1 workers); ${os.availableParallelism()} cores`,
    baseline: "js-naive",
    trafficDefinition: TRAFFIC_DEFINITION,
    toleranceDefinition: TOLERANCE_DEFINITION,
    pristineNote: PRISTINE_NOTE,
    gc: !!gc,
  },
  workloads: workloads.map((w) => ({ ...w, length: lengthOf(w), channels: channelsOf(w), count: countOf(w), bytes: bytesOf(w) })),
  ops: OPS,
  impls: implList.map(({ id, label, short, group, note, color, threads, async }) => ({ id, label, short, group, note, color, threads, async })),
  results: runner.results,
  threads: threadsResult,
  relu: { target: RELU_TARGET, variants: RELU_VARIANTS, rows: relu },
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
