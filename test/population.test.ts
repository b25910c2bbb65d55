// Exact population statistics (issue 10 item 4): startStatistics / forward ... / finishStatistics
// against a float64 computation over the whole data, in train mode (the forward's own batch
// statistics), eval mode and frozen (a statistics pass), on both backends, both layouts, 1 and 2
// threads, sync and async, with batches of unequal size; any batching gives the same statistics to
// float64 rounding; forwards meanwhile normalize as usual and leave the running statistics and the
// counter alone; the decisions (finish without start, start twice, too few values, state dict,
// async in flight) as documented.
import { afterAll, describe, expect, it } from "vitest";
import { Executor } from "../src/executor.js";
import type { Backend, BatchNorm } from "../src/index.js";
import { BACKENDS, THREADS, backend, checkBar } from "./helpers.js";
import { randn } from "./reference.js";

const defaultSplit = Executor.splitBytes;
afterAll(() => {
  Executor.splitBytes = defaultSplit;
});

const LAYOUTS = [
  { name: "channels-first [N, 3, 4, 5]", layout: "channels-first", shape: (n: number) => [n, 3, 4, 5] },
  { name: "channels-last [N, 2, 3, 3]", layout: "channels-last", shape: (n: number) => [n, 2, 3, 3] },
  { name: "[N, 3]", layout: "channels-first", shape: (n: number) => [n, 3] },
] as const;
const SIZES = [5, 2, 9, 3, 12]; // batches of unequal size
/** Per-channel offsets and scales: far from zero, and of very different sizes. */
const OFFSET = [1e3, -5, 0.25];
const SCALE = [0.01, 30, 1];

type Layout = (typeof LAYOUTS)[number];

/** Channel of element i in memory order. */
function channelOf(l: Layout, shape: number[], i: number): number {
  if (l.layout === "channels-last") return i % 3;
  const s = shape.slice(2).reduce((a, b) => a * b, 1);
  return Math.floor(i / s) % 3;
}

/** The batches: N(offset, scale^2) per channel, a seed per batch. */
function batches(l: Layout, seed: number, sizes = SIZES): { x: Float32Array; shape: number[] }[] {
  return sizes.map((n, b) => {
    const shape = l.shape(n);
    const x = randn(shape.reduce((a, d) => a * d, 1), seed + b);
    for (let i = 0; i < x.length; i++) x[i] = x[i] * SCALE[channelOf(l, shape, i)] + OFFSET[channelOf(l, shape, i)];
    return { x, shape };
  });
}

/** Count, mean and unbiased variance per channel over all the batches, in float64 (two passes). */
function population(l: Layout, data: { x: Float32Array; shape: number[] }[]): { count: number; mean: number[]; variance: number[] } {
  const sum = [0, 0, 0];
  const count = [0, 0, 0];
  for (const { x, shape } of data) {
    for (let i = 0; i < x.length; i++) {
      sum[channelOf(l, shape, i)] += x[i];
      count[channelOf(l, shape, i)] += 1;
    }
  }
  const mean = sum.map((s, c) => s / count[c]);
  const m2 = [0, 0, 0];
  for (const { x, shape } of data) for (let i = 0; i < x.length; i++) m2[channelOf(l, shape, i)] += (x[i] - mean[channelOf(l, shape, i)]) ** 2;
  return { count: count[0], mean, variance: m2.map((v, c) => v / (count[c] - 1)) };
}

/**
 * The bound on the collected variance's relative error: float64 rounding, conditioned by |mean| / sd
 * (1e5 for channel 0 here), in every mode. (A training forward that is not collecting squares
 * deviations in float32 on the SIMD build; while collecting it squares them in float64.)
 */
function varianceBound(mean: number, variance: number): number {
  return 16 * 2 ** -52 * (1 + Math.abs(mean) / Math.sqrt(variance));
}

function expectPopulation(stats: { mean: Float64Array; variance(o: { unbiased: true }): Float64Array }, ref: ReturnType<typeof population>, backendName: string, mode: string): void {
  const v = stats.variance({ unbiased: true });
  for (let c = 0; c < 3; c++) {
    expect(Math.abs(stats.mean[c] - ref.mean[c])).toBeLessThanOrEqual(4 * 2 ** -52 * Math.abs(ref.mean[c]));
    expect(Math.abs(v[c] - ref.variance[c])).toBeLessThanOrEqual(varianceBound(ref.mean[c], ref.variance[c]) * ref.variance[c]);
  }
}

/** Max relative difference. */
const rel = (a: ArrayLike<number>, b: ArrayLike<number>): number =>
  Math.max(...Array.from(b, (v, i) => Math.abs(a[i] - v) / Math.abs(v)));

const bits = (a: Float32Array): number[] => Array.from(new Uint32Array(a.slice().buffer));

type Mode = "train" | "eval" | "frozen";

function module(bn: Backend, l: Layout, mode: Mode): BatchNorm {
  const layer = new bn.BatchNorm(3, { layout: l.layout });
  layer.weight!.set([0.5, 2, -1]);
  layer.runningMean!.set([1, 2, 3]);
  layer.runningVar!.set([4, 5, 6]);
  layer.numBatchesTracked = 7;
  if (mode === "eval") layer.eval();
  if (mode === "frozen") layer.freeze();
  return layer;
}

describe.each(BACKENDS.flatMap((b) => THREADS.map((t) => [b, t] as const)))("population statistics, %s backend, %i thread(s)", (name, threads) => {
  const combos = LAYOUTS.flatMap((l) => (["train", "eval", "frozen"] as const).flatMap((mode) => [false, true].map((async) => [l.name, mode, async, l] as const)));
  it.each(combos)("%s, %s, async %s: the float64 answer over the whole data; forwards as usual; nothing else changes", async (_, mode, async, l) => {
    Executor.splitBytes = 0; // every call split over the threads
    const bn = await backend(name, threads);
    const data = batches(l, 10);
    const ref = population(l, data);
    const layer = module(bn, l, mode);
    const twin = module(bn, l, mode); // the same module, not collecting
    const before = JSON.stringify(layer.stateDict());
    layer.startStatistics();
    expect(layer.collectingStatistics).toBe(true);
    // a training forward that collects computes its batch statistics float64-grade (f64 squares in
    // the same pass), so its outputs may differ from a forward that does not by the rounding of those
    // statistics: within the bar; eval mode and frozen normalize exactly as usual
    const asUsual = (q: string, got: Float32Array, usual: Float32Array) => {
      if (mode === "train") expect(checkBar(q, got, usual, 0)).toBeNull();
      else expect(bits(got), q).toEqual(bits(usual));
    };
    for (const { x, shape } of data) {
      const y = async ? await layer.forwardAsync(x, shape) : layer.forward(x, shape);
      asUsual("y", y, twin.forward(x, shape));
      expect(JSON.stringify(layer.stateDict())).toBe(before); // no moving average, no count
    }
    const stats = layer.finishStatistics();
    expect(layer.collectingStatistics).toBe(false);
    expect(stats).toBeInstanceOf(bn.RunningStats);
    expect(stats.count).toBe(ref.count);
    // train mode collects the forward's statistics, eval mode and frozen an exact statistics pass
    expectPopulation(stats, ref, name, mode);
    // the running statistics: the collected ones rounded once to float32
    expect(Array.from(layer.runningMean!)).toEqual(Array.from(Float32Array.from(stats.mean)));
    expect(Array.from(layer.runningVar!)).toEqual(Array.from(Float32Array.from(stats.variance({ unbiased: true }))));
    expect(layer.numBatchesTracked).toBe(7);
    // the collected forwards backpropagate as usual
    const dy = randn(data[4].x.length, 99);
    asUsual("dx", layer.backward(dy), twin.backward(dy));
  });

  it.each(LAYOUTS.map((l) => [l.name, l] as const))("%s: any batching gives the same statistics to float64 rounding", async (_, l) => {
    Executor.splitBytes = 0;
    const bn = await backend(name, threads);
    const all = batches(l, 20, [31]);
    const ref = population(l, all);
    const per = l.shape(1).reduce((a, d) => a * d, 1);
    for (const sizes of [[31], [1 + 1, 29], [7, 7, 7, 10], [3, 2, 5, 4, 6, 11]]) {
      for (const mode of ["train", "eval"] as const) {
        const layer = module(bn, l, mode);
        layer.startStatistics();
        let at = 0;
        for (const n of sizes) {
          layer.forward(all[0].x.subarray(at * per, (at + n) * per), l.shape(n));
          at += n;
        }
        const stats = layer.finishStatistics();
        expect(stats.count).toBe(ref.count);
        expectPopulation(stats, ref, name, mode);
      }
    }
  });
});

describe.each(BACKENDS)("population statistics semantics, %s backend", (name) => {
  it("finish without start, start twice, too few values, cancel, no running statistics: named errors, nothing changes", async () => {
    const bn = await backend(name);
    const layer = new bn.BatchNorm(2);
    const before = JSON.stringify(layer);
    expect(() => layer.finishStatistics()).toThrow(TypeError);
    expect(() => layer.finishStatistics()).toThrow(/^finishStatistics: no statistics are being collected \(call startStatistics\(\) first\)/);
    expect(layer.startStatistics()).toBe(layer);
    layer.eval().forward(Float32Array.of(1, 2), [1, 2]); // one value per channel: eval mode takes it
    expect(() => layer.startStatistics()).toThrow(/^startStatistics: statistics are being collected already/);
    expect(() => layer.finishStatistics()).toThrow(RangeError);
    expect(() => layer.finishStatistics()).toThrow(/^finishStatistics: expected more than 1 value per channel for the unbiased variance, got 1/);
    expect(JSON.stringify(layer)).toBe(before);
    expect(layer.collectingStatistics).toBe(true); // the collection goes on, with what it had
    layer.forward(Float32Array.of(3, 6), [1, 2]);
    const kept = layer.runningMean!;
    layer.runningMean = new Float32Array(3);
    expect(() => layer.finishStatistics()).toThrow(/^runningMean: expected length 2/);
    expect(Array.from(layer.runningVar!)).toEqual([1, 1]);
    layer.runningMean = kept;
    const stats = layer.finishStatistics();
    expect(stats.count).toBe(2);
    expect(Array.from(stats.mean)).toEqual([2, 4]);
    expect(Array.from(layer.runningVar!)).toEqual([2, 8]);
    layer.startStatistics();
    layer.forward(Float32Array.of(3, 6, 1, 1), [2, 2]);
    layer.cancelStatistics();
    expect(layer.collectingStatistics).toBe(false);
    expect(Array.from(layer.runningVar!)).toEqual([2, 8]);
    expect(() => layer.finishStatistics()).toThrow(/no statistics are being collected/);
    const untracked = new bn.BatchNorm(2, { trackRunningStats: false });
    expect(() => untracked.startStatistics()).toThrow(/^startStatistics: this module has no running statistics \(created with trackRunningStats: false\)/);
    expect(untracked.collectingStatistics).toBe(false);
  });

  it("with runningVariance 'biased' (Keras, ONNX), finishStatistics sets the biased variance; one value per channel is enough", async () => {
    const bn = await backend(name);
    const layer = new bn.BatchNorm(2, { runningVariance: "biased" }).eval();
    layer.startStatistics();
    expect(() => layer.finishStatistics()).toThrow(/^finishStatistics: expected at least 1 value per channel, got 0/);
    layer.forward(Float32Array.of(1, 2), [1, 2]);
    expect(layer.finishStatistics().count).toBe(1);
    expect(Array.from(layer.runningMean!)).toEqual([1, 2]);
    expect(Array.from(layer.runningVar!)).toEqual([0, 0]);
    layer.train().startStatistics();
    layer.forward(Float32Array.of(1, 2, 3, 6), [2, 2]);
    layer.forward(Float32Array.of(5, 10, 7, 14), [2, 2]);
    layer.finishStatistics();
    expect(Array.from(layer.runningMean!)).toEqual([4, 8]);
    expect(Array.from(layer.runningVar!)).toEqual([5, 20]);
  });

  it("a forward that throws while collecting adds nothing; an empty batch adds nothing and is not counted", async () => {
    const bn = await backend(name);
    const layer = new bn.BatchNorm(2, { momentum: null });
    layer.startStatistics();
    expect(() => layer.forward(Float32Array.of(100, 200), [1, 2])).toThrow(/more than 1 value per channel/); // training
    expect(() => layer.forward(new Float32Array(6), [2, 3])).toThrow(/expected 2 channels/);
    layer.forward(new Float32Array(0), [0, 2]);
    expect(layer.numBatchesTracked).toBe(0);
    layer.forward(Float32Array.of(1, 2, 3, 4), [2, 2]);
    const stats = layer.finishStatistics();
    expect(stats.count).toBe(2);
    expect(Array.from(stats.mean)).toEqual([2, 3]);
    expect(layer.numBatchesTracked).toBe(0);
    // training goes on from the exact statistics: momentum null counts from the counter as it is
    layer.forward(Float32Array.of(5, 6, 7, 8), [2, 2]);
    expect(layer.numBatchesTracked).toBe(1);
    expect(Array.from(layer.runningMean!)).toEqual([6, 7]);
  });

  it("a layer-by-layer pass in eval mode is exact for a stack: the second layer sees the first's final output", async () => {
    const bn = await backend(name);
    const first = new bn.BatchNorm(2).eval();
    const second = new bn.BatchNorm(2).eval();
    const data = [4, 7, 2].map((n, b) => randn(n * 2 * 3, b + 1, 2, 5));
    first.startStatistics();
    for (const x of data) first.forward(x, [x.length / 6, 2, 3]);
    first.finishStatistics();
    second.startStatistics();
    const hidden = data.map((x) => first.forward(x, [x.length / 6, 2, 3]));
    for (const h of hidden) second.forward(h, [h.length / 6, 2, 3]);
    const stats = second.finishStatistics();
    // the first layer's output, with its exact statistics, has mean (bias) 0 and variance ~1 per channel
    const whole = new bn.RunningStats(2);
    for (const h of hidden) whole.update(h, { shape: [h.length / 6, 2, 3] });
    expect(rel(stats.mean.map((m) => m + 1), whole.mean.map((m) => m + 1))).toBeLessThanOrEqual(1e-14);
    expect(rel(stats.variance({ unbiased: true }), whole.variance({ unbiased: true }))).toBeLessThanOrEqual(1e-14);
    for (const v of stats.variance({ unbiased: true })) expect(Math.abs(v - 1)).toBeLessThan(1e-4);
  });

  it("async: forwardAsync collects in call order; a sync start or finish while one is in flight throws", async () => {
    const bn = await backend(name, 2);
    const layer = new bn.BatchNorm(2);
    layer.startStatistics();
    const pending = [layer.forwardAsync(Float32Array.of(1, 2, 3, 4), [2, 2]), layer.forwardAsync(Float32Array.of(5, 6, 7, 9), [2, 2])];
    expect(() => layer.finishStatistics()).toThrow(/^finishStatistics: an async call is in flight/);
    expect(() => new bn.BatchNorm(2).startStatistics()).toThrow(/^startStatistics: an async call is in flight/);
    await Promise.all(pending);
    const stats = layer.finishStatistics();
    expect(stats.count).toBe(4);
    expect(Array.from(stats.mean)).toEqual([4, 5.25]);
  });
});
