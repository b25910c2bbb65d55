// Threads and the async API in Node: 2 threads give the same bits on every run; a channel split
// gives the bits of 1 thread; a row split stays within the accuracy bar of them; async calls give
// the sync results, overlap safely (queued in order), never block the event loop for a whole call,
// and a sync call while one is in flight throws a clear error. terminate() ends a backend's workers.
import { afterAll, describe, expect, it } from "vitest";
import { Executor } from "../src/executor.js";
import { init, type Backend } from "../src/index.js";
import { BACKENDS, ULP } from "./helpers.js";
import { randn } from "./reference.js";

const defaultSplit = Executor.splitBytes;
afterAll(() => {
  Executor.splitBytes = defaultSplit;
});

const CASES = [
  { name: "channels-first, channel split", shape: [3, 8, 9, 7], layout: "channels-first" },
  { name: "channels-first, few channels: image split", shape: [5, 1, 33], layout: "channels-first" },
  { name: "channels-last, row split", shape: [4, 5, 6, 9], layout: "channels-last" },
  { name: "[N, C], row split", shape: [37, 10], layout: "channels-first" },
  { name: "[N, C], wide rows: statistics by channel, the rest by rows", shape: [9, 1031], layout: "channels-last" },
] as const;

/** What the forward computes: exact to 1 thread where its statistics split by channel. */
const FORWARD = new Set(["y", "mean", "invstd", "runningMean", "runningVar"]);

/** Forward (training, running statistics) and backward on `bn`, sync or async. */
async function run(bn: Backend, c: (typeof CASES)[number], async: boolean) {
  const length = c.shape.reduce((a, b) => a * b, 1);
  const channels = c.layout === "channels-last" ? c.shape[c.shape.length - 1] : c.shape[1];
  const x = randn(length, 3, 2, 1);
  const dy = randn(length, 4);
  const weight = randn(channels, 5, 0.5, 1);
  const bias = randn(channels, 6);
  const runningMean = new Float32Array(channels);
  const runningVar = new Float32Array(channels).fill(1);
  const opts = { shape: c.shape, layout: c.layout, weight, bias, runningMean, runningVar };
  const f = async ? await bn.batchNormAsync(x, opts) : bn.batchNorm(x, opts);
  const bopts = { shape: c.shape, layout: c.layout, weight, mean: f.mean, invstd: f.invstd };
  const b = async ? await bn.batchNormBackwardAsync(dy, x, bopts) : bn.batchNormBackward(dy, x, bopts);
  return { y: f.y, mean: f.mean, invstd: f.invstd, runningMean, runningVar, dx: b.dx, dweight: b.dweight, dbias: b.dbias };
}

const bits = (a: Float32Array) => Array.from(new Uint32Array(a.slice().buffer));

describe.each(BACKENDS)("threads, %s backend", (name) => {
  it("init({ threads }) gives independent backends; bn.threads says what runs", async () => {
    const one = await init({ backend: name, threads: 1 });
    const two = await init({ backend: name, threads: 2 });
    expect(one).not.toBe(two);
    expect(one.threads).toBe(1);
    expect(two.threads).toBe(2);
    expect(await init({ backend: name, threads: 2 })).toBe(two);
    await expect(init({ backend: name, threads: 0 })).rejects.toThrow(/threads/);
    await expect(init({ backend: name, threads: 1.5 })).rejects.toThrow(/threads/);
    await expect(init({ backend: name, threads: "many" as never })).rejects.toThrow(/threads/);
  });

  it.each(CASES)("$name: 2 threads repeat their bits, match 1 thread, and async equals sync", async (c) => {
    Executor.splitBytes = 0;
    const one = await init({ backend: name, threads: 1 });
    const two = await init({ backend: name, threads: 2 });
    const single = await run(one, c, false);
    const first = await run(two, c, false);
    const again = await run(two, c, false);
    const asyncTwo = await run(two, c, true);
    const asyncOne = await run(one, c, true);
    for (const [q, v] of Object.entries(first) as [keyof typeof first, Float32Array][]) {
      const exact = c.name.includes("channel split") || (c.name.includes("statistics by channel") && FORWARD.has(q));
      expect(bits(again[q]), `${q}: the same bits on every run`).toEqual(bits(v));
      expect(bits(asyncTwo[q]), `${q}: async = sync`).toEqual(bits(v));
      expect(bits(asyncOne[q]), `${q}: async = sync, 1 thread`).toEqual(bits(single[q]));
      if (exact) expect(bits(v), `${q}: channel split = 1 thread`).toEqual(bits(single[q]));
      else {
        let scale = 0;
        let worst = 0;
        for (let i = 0; i < v.length; i++) {
          scale = Math.max(scale, Math.abs(single[q][i]));
          worst = Math.max(worst, Math.abs(v[i] - single[q][i]));
        }
        expect(worst, `${q}: row split within the bar of 1 thread`).toBeLessThanOrEqual(16 * ULP * scale);
      }
    }
  });

  it("overlapping async calls queue in order and give the sync results; a sync call meanwhile throws", async () => {
    Executor.splitBytes = 0;
    const bn = await init({ backend: name, threads: 2 });
    const shape = [4, 6, 10, 10];
    const xs = [1, 2, 3, 4].map((s) => randn(2400, s, s, s));
    const expected = xs.map((x) => bn.batchNorm(x, { shape }).y);
    const pending = xs.map((x) => bn.batchNormAsync(x, { shape }));
    expect(() => bn.batchNorm(xs[0], { shape })).toThrow(/async call is in flight/);
    const got = await Promise.all(pending);
    got.forEach((r, i) => expect(bits(r.y)).toEqual(bits(expected[i])));
    expect(bits(bn.batchNorm(xs[0], { shape }).y)).toEqual(bits(expected[0])); // usable again
    await expect(bn.batchNormAsync(xs[0], { shape: [1, 2] })).rejects.toThrow(RangeError); // validation rejects
  });

  it("the module and RunningStats have async twins with the sync results", async () => {
    Executor.splitBytes = 0;
    const bn = await init({ backend: name, threads: 2 });
    const shape = [6, 5, 7, 3];
    const x = randn(630, 9, 2, 1);
    const dy = randn(630, 10);
    const a = new bn.BatchNorm(5);
    const b = new bn.BatchNorm(5);
    const ya = a.forward(x, shape);
    const yb = await b.forwardAsync(x, shape);
    expect(bits(yb)).toEqual(bits(ya));
    expect(bits(await b.backwardAsync(dy))).toEqual(bits(a.backward(dy)));
    expect(bits(b.runningVar!)).toEqual(bits(a.runningVar!));
    expect(bits(b.weightGrad!)).toEqual(bits(a.weightGrad!));
    const s = new bn.RunningStats(5);
    const t = new bn.RunningStats(5);
    s.update(x, { shape });
    await t.updateAsync(x, { shape });
    expect(Array.from(t.mean)).toEqual(Array.from(s.mean));
    expect(Array.from(t.variance())).toEqual(Array.from(s.variance()));
  });

  it("terminate() ends the workers; init() then loads a new backend", async () => {
    const bn = await init({ backend: name, threads: 2 });
    await bn.terminate();
    const again = await init({ backend: name, threads: 2 });
    expect(again).not.toBe(bn);
    expect(again.threads).toBe(2);
    expect(again.batchNorm(randn(40, 1), { shape: [4, 10] }).y.length).toBe(40);
  });
});

describe("an async call never blocks the event loop for the whole call", () => {
  it("a 1 ms ticker keeps ticking while a large async call runs", async () => {
    Executor.splitBytes = defaultSplit;
    const bn = await init({ backend: "simd", threads: 2 });
    const shape = [16, 64, 48, 48];
    const x = bn.alloc(16 * 64 * 48 * 48);
    x.data.set(randn(x.length, 1));
    const ticks: number[] = [];
    const timer = setInterval(() => ticks.push(performance.now()), 1);
    const start = performance.now();
    for (let i = 0; i < 5; i++) await bn.batchNormAsync(x, { shape, out: x });
    const took = performance.now() - start;
    clearInterval(timer);
    x.free();
    // the calls took many milliseconds; the ticker ran during them (no timing bound: machines differ)
    expect(took).toBeGreaterThan(2);
    expect(ticks.filter((t) => t < start + took).length).toBeGreaterThan(0);
  });
});
