// The threads dimension of `npm run bench`: the same call on backends with 1, 2, 4 ... threads,
// timed in interleaved batches so that T threads over 1 is a paired ratio (drift in the machine's
// load hits both sides alike); the async API against the sync one; and how late a 1 ms ticker runs
// on the event loop while async calls run. Rendering is in bench/report.js.
import { readFileSync } from "node:fs";
import os from "node:os";
import { interleaved, median, quartiles } from "./harness.js";
import { check } from "./workloads.js";

/**
 * Issue 9's targets for 2 threads over 1 on a 2-core machine, by workload: at least this speed-up
 * (S1 and S5 may be bound by DRAM bandwidth; S4 and the tiny call must not lose to the pool).
 */
export const THREAD_TARGETS = { S1: 1.3, S2: 1.7, S3: 1.7, S4: 0.95, S5: 1.3, tiny: 0.95 };
/** The async API's time over the sync one's, at most (S1). */
export const ASYNC_TARGET = 1.05;
/** A 1 ms ticker's worst lateness while twenty async S1 calls run, at most (ms). */
export const TICKER_TARGET_MS = 5;

/** ms of CPU time the hypervisor gave to others while this VM wanted it (Linux /proc/stat "steal"), or null. */
function stealMs() {
  try {
    return (Number(readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/)[8]) * 1000) / 100; // USER_HZ = 100
  } catch {
    return null;
  }
}

/**
 * Starts measuring CPU use; the function it returns gives, since the start, the average number of
 * cores busy with this process (its main thread and workers), with other processes, and stolen by
 * the hypervisor (Linux VMs; null elsewhere). Anything competing for the cores makes a threaded
 * call wait for its slowest part, so the last two say how far the threads rows can be trusted.
 */
export function cpuMeter() {
  const busy = () => os.cpus().reduce((sum, { times: t }) => sum + t.user + t.nice + t.sys + t.irq, 0);
  const [t0, busy0, own0, steal0] = [performance.now(), busy(), process.cpuUsage(), stealMs()];
  return () => {
    const wall = performance.now() - t0;
    const own = process.cpuUsage(own0);
    const ownMs = (own.user + own.system) / 1000;
    const steal = stealMs();
    return {
      ownCores: ownMs / wall,
      otherCores: Math.max(0, (busy() - busy0 - ownMs) / wall),
      stolenCores: steal === null || steal0 === null ? null : (steal - steal0) / wall,
    };
  };
}

/** Thread counts to compare: 1, then powers of two up to the cores this machine has. */
export function threadCounts(cores = os.availableParallelism()) {
  const counts = [1];
  for (let t = 2; t <= cores; t *= 2) counts.push(t);
  return counts;
}

/**
 * Prepares each Impl on (w, op), runs it once and checks every output against the float64
 * reference; only if all pass, times them in interleaved batches. Returns per Impl the median ms
 * and the per-round times, or the first failure (nothing is timed then).
 * @param {import('./harness.js').Impl[]} impls
 * @param {import('./workloads.js').Workload} w
 * @param {string} op
 * @param {{ rounds: number, targetMs: number }} timing
 */
export async function paired(impls, w, op, { rounds, targetMs }) {
  const prepared = [];
  try {
    const errors = [];
    for (const impl of impls) {
      const p = await impl.prepare(w, op);
      prepared.push(p);
      await p.run();
      const c = check(w, op, await p.outputs());
      if (!c.ok) return { status: "wrong", reason: `${impl.id}: ${c.message}` };
      errors.push(c.error);
    }
    const perRound = await interleaved(prepared.map((p) => p.run), rounds, targetMs);
    return { status: "ok", ms: perRound.map(median), perRound, errors };
  } catch (e) {
    return { status: "failed", reason: e instanceof Error ? `${e.name}: ${e.message}` : String(e) };
  } finally {
    for (const p of prepared) p.dispose?.();
  }
}

/**
 * Quartiles of the per-round ratios a[r] / b[r] (adjacent batches): the median is the paired ratio
 * (robust to a round that a burst of load hit on one side only), q1 and q3 its spread.
 */
const ratioQuartiles = (a, b) => quartiles(a.map((x, r) => x / b[r]));

/**
 * Speed-up of each threaded Impl over its one-thread twin, per (workload, op): `groups` holds Impls
 * of one backend and API, the first on 1 thread. A row per group and pair: { workload, op, impl
 * (the 1-thread id), label, threads, ms (median per call), speedup (median of the per-round ratios
 * 1T / TT), speedupQuartiles, errors (of the check), target }.
 * @param {import('./harness.js').Impl[][]} groups
 * @param {{ w: import('./workloads.js').Workload, op: string }[]} pairs
 * @param {{ rounds: number, targetMs: number, log: (line: string) => void }} o
 */
export async function threadScaling(groups, pairs, { rounds, targetMs, log }) {
  const rows = [];
  for (const { w, op } of pairs) {
    for (const impls of groups) {
      const r = await paired(impls, w, op, { rounds, targetMs });
      const row = {
        workload: w.id, op, impl: impls[0].id, label: impls[0].short ?? impls[0].id, threads: impls.map((m) => m.threads), status: r.status, target: THREAD_TARGETS[w.id],
      };
      if (r.status !== "ok") {
        row.reason = r.reason;
        log(`threads ${w.id} ${op} ${impls[0].id}: ${r.status.toUpperCase()}, not timed: ${r.reason}`);
      } else {
        const speedupQuartiles = r.perRound.map((times) => ratioQuartiles(r.perRound[0], times));
        Object.assign(row, { ms: r.ms, errors: r.errors, speedup: speedupQuartiles.map((q) => q[1]), speedupQuartiles });
        log(`threads ${w.id} ${op} ${impls[0].id}: ${row.threads.map((t, i) => `${t}T ${r.ms[i].toFixed(4)} ms`).join(", ")}; ${row.threads.slice(1).map((t, i) => `${t}T/1T ${row.speedup[i + 1].toFixed(2)}x`).join(", ")}`);
      }
      rows.push(row);
    }
  }
  return rows;
}

/**
 * The async API against the sync one on the same backend: for each pair [sync, async] of Impls and
 * each (workload, op), the async call's time over the sync call's (paired, interleaved).
 * @param {[import('./harness.js').Impl, import('./harness.js').Impl][]} twins
 * @param {{ w: import('./workloads.js').Workload, op: string }[]} pairs
 * @param {{ rounds: number, targetMs: number, log: (line: string) => void }} o
 */
export async function asyncOverSync(twins, pairs, { rounds, targetMs, log }) {
  const rows = [];
  for (const { w, op } of pairs) {
    for (const [sync, async] of twins) {
      const r = await paired([sync, async], w, op, { rounds, targetMs });
      const row = { workload: w.id, op, sync: sync.id, async: async.id, threads: sync.threads, status: r.status, target: ASYNC_TARGET };
      if (r.status !== "ok") row.reason = r.reason;
      else {
        const q = ratioQuartiles(r.perRound[1], r.perRound[0]);
        Object.assign(row, { syncMs: r.ms[0], asyncMs: r.ms[1], ratio: q[1], ratioQuartiles: q });
      }
      log(`async ${w.id} ${op} ${async.id}: ${r.status === "ok" ? `sync ${row.syncMs.toFixed(3)} ms, async ${row.asyncMs.toFixed(3)} ms, ${row.ratio.toFixed(3)}x` : `${r.status.toUpperCase()}: ${r.reason}`}`);
      rows.push(row);
    }
  }
  return rows;
}

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const turn = () => new Promise((resolve) => setImmediate(resolve));

/**
 * How late a setInterval(intervalMs) ticker runs while `calls` calls of `fn` run back to back: each
 * call is awaited if it returns a promise, else the loop yields one event-loop turn between calls
 * (as a server does between requests). Lateness of a tick: its gap since the previous tick minus
 * intervalMs; returns the worst and the 99th percentile (ms), the ticks seen and the wall time.
 * @param {() => unknown} fn
 */
export async function tickerLateness(fn, { calls = 20, intervalMs = 1 } = {}) {
  const gaps = [];
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    gaps.push(now - last);
    last = now;
  }, intervalMs);
  try {
    await pause(10 * intervalMs); // the ticker settles
    gaps.length = 0;
    const t0 = performance.now();
    for (let i = 0; i < calls; i++) {
      const r = fn();
      await (r && typeof r.then === "function" ? r : turn());
    }
    const wallMs = performance.now() - t0;
    await pause(3 * intervalMs); // a tick after the last call: a ticker held up by that call counts too
    const late = gaps.map((g) => Math.max(0, g - intervalMs)).sort((a, b) => a - b);
    return { calls, wallMs, ticks: gaps.length, worstMs: late.at(-1) ?? NaN, p99Ms: late[Math.floor(0.99 * (late.length - 1))] ?? NaN };
  } finally {
    clearInterval(timer);
  }
}

/**
 * The ticker while twenty calls of each case run: `cases` are { id, label, impl } (an Impl whose
 * run() is the call), prepared on (w, op) and checked first; plus an idle baseline (the ticker's own
 * jitter: twenty 5 ms sleeps).
 * @param {{ id: string, label: string, impl: import('./harness.js').Impl }[]} cases
 * @param {import('./workloads.js').Workload} w
 * @param {string} op
 */
export async function tickerRows(cases, w, op, { calls = 20, log }) {
  const rows = [{ id: "idle", label: "idle (twenty 5 ms sleeps)", workload: w.id, op: "sleep", status: "ok", ...(await tickerLateness(() => pause(5), { calls })) }];
  for (const { id, label, impl } of cases) {
    const row = { id, label, impl: impl.id, workload: w.id, op, status: "ok", target: impl.async ? TICKER_TARGET_MS : undefined };
    let p;
    try {
      p = await impl.prepare(w, op);
      await p.run();
      const c = check(w, op, await p.outputs());
      if (!c.ok) Object.assign(row, { status: "wrong", reason: c.message });
      else Object.assign(row, await tickerLateness(p.run, { calls }));
    } catch (e) {
      Object.assign(row, { status: "failed", reason: e instanceof Error ? e.message : String(e) });
    } finally {
      p?.dispose?.();
    }
    rows.push(row);
  }
  for (const r of rows) log(`ticker ${r.label}: ${r.status === "ok" ? `worst ${r.worstMs.toFixed(2)} ms late, p99 ${r.p99Ms.toFixed(2)} ms, ${r.ticks} ticks in ${r.wallMs.toFixed(0)} ms` : `${r.status}: ${r.reason}`}`);
  return rows;
}
