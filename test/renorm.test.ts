// Batch renormalization, the module's `renorm` option (issue 10 item 6): against a float64
// implementation of the formulas written here (r and d clipped, from the running statistics
// before each batch's update; r = 1, d = 0 in warm-up; r and d constants in backward), over several
// training steps, with and without affine parameters, Keras-style (no scale, biased running
// variance), momentum a number or null, with ghost batches, with tracking switched off; on both backends, both layouts, 1 and 2 threads (every call split),
// Float32Arrays staged through small chunks and WasmTensors in place, sync and async, within the
// library's bar (8 float32 ulps of the quantity's largest float64 magnitude). Its r = 1, d = 0 limit
// (rMax 1, dMax 0) against PyTorch's plain BatchNorm (test/golden/, and test/golden-ghost/ chunk by
// chunk). Warm-up steps give plain BN's bits, eval is plain eval, bad settings are named errors with
// nothing changed, and the settings survive the module's JSON form.
import { readFileSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { Engine } from "../src/engine.js";
import { Executor } from "../src/executor.js";
import type { Backend, BatchNorm, WasmTensor } from "../src/index.js";
import { BACKENDS, THREADS, ULP, backend, checkBar, f32, f64, golden, goldenNames, memoryShape } from "./helpers.js";
import { dims, randn } from "./reference.js";

interface Settings {
  rMax: number;
  dMax: number;
  warmupSteps: number;
}

interface State {
  weight: Float32Array | null;
  bias: Float32Array | null;
  runningMean: Float64Array;
  runningVar: Float64Array;
  counter: number;
}

/**
 * One training step of batch renormalization in float64, on each ghost batch of `v` samples in turn
 * (v null: one batch), updating `state` (running statistics and counter when `track`). Returns y, the
 * gradients for dy (r and d constants), and r, d, sigmaB per chunk.
 */
function reference(
  x: ArrayLike<number>, dy: ArrayLike<number>, shape: number[], layout: "channels-first" | "channels-last", s: Settings,
  state: State, eps: number, momentum: number | null, v: number | null, track: boolean, biased = false,
) {
  const { length, c, n } = dims(shape, layout);
  const perSample = length / n;
  const y = new Float64Array(length);
  const dx = new Float64Array(length);
  const dweight = new Float64Array(c);
  const dbias = new Float64Array(c);
  const chunks: { r: Float64Array; d: Float64Array; sigmaB: Float64Array }[] = [];
  const step = v ?? n;
  for (let n0 = 0; n0 < n; n0 += step) {
    const nk = Math.min(step, n - n0);
    const at = n0 * perSample;
    const len = nk * perSample;
    const { channel, count } = dims([nk, ...shape.slice(1)], layout);
    const mean = new Float64Array(c);
    const variance = new Float64Array(c);
    for (let i = 0; i < len; i++) mean[channel(i)] += x[at + i];
    for (let k = 0; k < c; k++) mean[k] /= count;
    for (let i = 0; i < len; i++) variance[channel(i)] += (x[at + i] - mean[channel(i)]) ** 2;
    for (let k = 0; k < c; k++) variance[k] /= count;
    const warm = state.counter < s.warmupSteps;
    const r = new Float64Array(c);
    const d = new Float64Array(c);
    const sigmaB = new Float64Array(c);
    for (let k = 0; k < c; k++) {
      sigmaB[k] = Math.sqrt(variance[k] + eps);
      const sigma = Math.sqrt(state.runningVar[k] + eps);
      r[k] = warm ? 1 : Math.min(Math.max(sigmaB[k] / sigma, 1 / s.rMax), s.rMax);
      d[k] = warm ? 0 : Math.min(Math.max((mean[k] - state.runningMean[k]) / sigma, -s.dMax), s.dMax);
    }
    chunks.push({ r, d, sigmaB });
    const w = (k: number) => (state.weight ? state.weight[k] : 1);
    const xhat = (i: number) => (x[at + i] - mean[channel(i)]) / sigmaB[channel(i)];
    const sumDy = new Float64Array(c);
    const sumDyXhat = new Float64Array(c);
    for (let i = 0; i < len; i++) {
      const k = channel(i);
      y[at + i] = w(k) * (xhat(i) * r[k] + d[k]) + (state.bias ? state.bias[k] : 0);
      sumDy[k] += dy[at + i];
      sumDyXhat[k] += dy[at + i] * xhat(i);
    }
    for (let i = 0; i < len; i++) {
      const k = channel(i);
      dx[at + i] = ((w(k) * r[k]) / sigmaB[k]) * (dy[at + i] - sumDy[k] / count - (xhat(i) * sumDyXhat[k]) / count);
    }
    for (let k = 0; k < c; k++) {
      dweight[k] += r[k] * sumDyXhat[k] + d[k] * sumDy[k];
      dbias[k] += sumDy[k];
    }
    if (track) {
      const f = momentum ?? 1 / (state.counter + 1);
      for (let k = 0; k < c; k++) {
        state.runningMean[k] = (1 - f) * state.runningMean[k] + f * mean[k];
        state.runningVar[k] = (1 - f) * state.runningVar[k] + (f * variance[k] * count) / (biased ? count : count - 1);
      }
      state.counter += 1;
    }
  }
  return { y, dx, dweight, dbias, chunks };
}

/** Pushes a message when max|ours - ref| exceeds 8 ulps of `scale` (default max|ref|). */
function check(misses: string[], what: string, ours: ArrayLike<number>, ref: ArrayLike<number>, scale?: number): void {
  let top = 0;
  let worst = 0;
  for (let i = 0; i < ref.length; i++) {
    top = Math.max(top, Math.abs(ref[i]));
    worst = Math.max(worst, Number.isFinite(ours[i]) ? Math.abs(ours[i] - ref[i]) : Infinity);
  }
  const bar = 8 * ULP * (scale ?? top);
  if (!(worst <= bar)) misses.push(`${what}: error ${worst.toExponential(3)} > bar ${bar.toExponential(3)}`);
}

const defaultChunk = Engine.chunkBytes;
const defaultSplit = Executor.splitBytes;
afterAll(() => {
  Engine.chunkBytes = defaultChunk;
  Executor.splitBytes = defaultSplit;
});

/** Channel k's data: scale and offset chosen so that r and d clip on some channels and not on others. */
const SCALES = [0.3, 1.2, 3, 0.9, 40, 1e-3];
const OFFSETS = [-2, 0.1, 1, 0, 1e3, -0.2];

function batch(shape: number[], layout: "channels-first" | "channels-last", seed: number): Float32Array {
  const { length, channel } = dims(shape, layout);
  const z = randn(length, seed);
  return Float32Array.from(z, (v, i) => OFFSETS[channel(i) % 6] + SCALES[channel(i) % 6] * v);
}

const CONFIGS = [
  { name: "affine, momentum 0.1, warm-up 1", affine: true, momentum: 0.1 as number | null, v: null as number | null, s: { rMax: 1.5, dMax: 0.5, warmupSteps: 1 }, track: true },
  { name: "no affine, momentum null", affine: false, momentum: null, v: null, s: { rMax: 2, dMax: 1, warmupSteps: 0 }, track: true },
  { name: "ghost batches of 3, warm-up 2 chunks", affine: true, momentum: 0.2, v: 3, s: { rMax: 1.3, dMax: 0.25, warmupSteps: 2 }, track: true },
  { name: "tracking switched off (fixed running statistics)", affine: true, momentum: 0.1, v: null, s: { rMax: 3, dMax: 5, warmupSteps: 0 }, track: false },
  { name: "Keras-style: no scale, biased running variance", affine: true, scale: false, biased: true, momentum: 0.01, v: null, s: { rMax: 1.5, dMax: 0.5, warmupSteps: 0 }, track: true },
] as { name: string; affine: boolean; scale?: boolean; biased?: boolean; momentum: number | null; v: number | null; s: Settings; track: boolean }[];

type Path = "Float32Array" | "WasmTensor";

describe.each(BACKENDS.flatMap((b) => THREADS.map((t) => [b, t] as const)))("batch renormalization against float64, %s backend, %i thread(s)", (name, threads) => {
  describe.each(["channels-first", "channels-last"] as const)("%s", (layout) => {
    it.each(CONFIGS.flatMap((cfg) => (["Float32Array", "WasmTensor"] as Path[]).map((path) => [cfg.name, path, cfg] as const)))("%s, %s, sync and async", async (_, path, cfg) => {
      const bn = await backend(name, threads);
      Engine.chunkBytes = 256;
      Executor.splitBytes = 0;
      const C = 6;
      const shape = layout === "channels-first" ? [7, C, 3, 4] : [7, 3, 4, C];
      for (const async of [false, true]) {
        const layer = new bn.BatchNorm(C, {
          layout, affine: cfg.affine, scale: cfg.scale, runningVariance: cfg.biased ? "biased" : "unbiased", momentum: cfg.momentum, virtualBatchSize: cfg.v, renorm: cfg.s,
        });
        layer.trackRunningStats = cfg.track;
        layer.weight?.set(randn(C, 1, 0.5, 1));
        layer.bias?.set(randn(C, 2));
        layer.runningMean!.set(randn(C, 3, 0.1));
        layer.runningVar!.set(Float32Array.from(randn(C, 4), (v) => 0.8 + 0.1 * v * v));
        const state: State = {
          weight: layer.weight?.slice() ?? null,
          bias: layer.bias?.slice() ?? null,
          runningMean: Float64Array.from(layer.runningMean!),
          runningVar: Float64Array.from(layer.runningVar!),
          counter: 0,
        };
        const misses: string[] = [];
        let clipped = 0;
        for (let step = 0; step < 4; step++) {
          const x = batch(shape, layout, 10 + step);
          const dy = randn(x.length, 20 + step, 1, step % 2 ? 0.5 : 0);
          const ref = reference(x, dy, shape, layout, cfg.s, state, layer.eps, cfg.momentum, cfg.v, cfg.track, cfg.biased);
          for (const { r } of ref.chunks) clipped += r.filter((v) => v === cfg.s.rMax || v === 1 / cfg.s.rMax).length;
          const held: WasmTensor[] = [];
          const put = (a: Float32Array) => {
            if (path === "Float32Array") return a;
            const t = bn.alloc(a.length);
            t.data.set(a);
            held.push(t);
            return t;
          };
          const xt = put(x);
          const y = async ? await layer.forwardAsync(xt, shape) : layer.forward(xt, shape);
          layer.zeroGrad();
          const dx = async ? await layer.backwardAsync(put(dy)) : layer.backward(put(dy));
          held.forEach((t) => t.free());
          const at = `step ${step}`;
          check(misses, `${at} y`, y, ref.y);
          check(misses, `${at} runningMean`, layer.runningMean!, state.runningMean);
          check(misses, `${at} runningVar`, layer.runningVar!, state.runningVar);
          // the dx bar is the scale of the terms it sums: max|dy| * max over chunks and channels of |w r| / sigmaB
          let dxScale = 0;
          for (const { r, sigmaB } of ref.chunks) {
            for (let i = 0; i < C; i++) dxScale = Math.max(dxScale, Math.abs((state.weight ? state.weight[i] : 1) * r[i]) / sigmaB[i]);
          }
          dxScale *= dy.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
          check(misses, `${at} dx`, dx, ref.dx, dxScale);
          if (layer.weight) check(misses, `${at} dweight`, layer.weightGrad!, ref.dweight);
          else expect(layer.weightGrad).toBeNull();
          if (layer.bias) check(misses, `${at} dbias`, layer.biasGrad!, ref.dbias);
          expect(layer.numBatchesTracked).toBe(state.counter);
        }
        expect(clipped, "the data clips r on some channels").toBeGreaterThan(0);
        expect(misses, async ? "async" : "sync").toEqual([]);
      }
    });
  });
});

/** Collects every missed bar of a PyTorch case (test/golden or test/golden-ghost format). */
function collect(misses: string[], q: string, ours: ArrayLike<number> | null, expected: Record<string, unknown>, errors: Record<string, unknown>): void {
  const exp = expected[q];
  if (exp === undefined || exp === null) return;
  if (ours === null) return void misses.push(`${q}: not produced`);
  const m = checkBar(q, ours, f64(Array.isArray(exp) ? exp : [exp]), errors[q] as number);
  if (m) misses.push(m);
}

const ghostDir = fileURLToPath(new URL("./golden-ghost/", import.meta.url));
const ghostCases = readdirSync(ghostDir).filter((f) => f.endsWith(".json")).sort().map((f) => JSON.parse(readFileSync(ghostDir + f, "utf8")));

describe.each(BACKENDS)("batch renormalization's r = 1, d = 0 limit (rMax 1, dMax 0) against PyTorch, %s backend", (name) => {
  const trainCases = goldenNames().filter((n) => {
    const c = golden(n);
    return c.track_running_stats && (c.op === "forward_train" || c.op === "backward" || c.op === "sequence") && (c.steps ?? [c]).some((s) => s.mode === "train");
  });

  it.each(trainCases)("%s", async (caseName) => {
    Engine.chunkBytes = defaultChunk;
    Executor.splitBytes = defaultSplit;
    const bn = await backend(name);
    const c = golden(caseName);
    const { shape, layout } = memoryShape(c);
    const layer = new bn.BatchNorm(c.shape[1], { eps: c.eps, momentum: c.momentum, affine: c.affine, layout, renorm: { rMax: 1, dMax: 0 } });
    layer.loadStateDict({
      ...(c.affine ? { weight: c.inputs.gamma as number[], bias: c.inputs.beta as number[] } : {}),
      running_mean: c.inputs.running_mean as number[], running_var: c.inputs.running_var as number[], num_batches_tracked: c.inputs.num_batches_tracked as number,
    });
    const misses: string[] = [];
    const steps = c.steps ?? [{ mode: c.mode, x: c.inputs.x as number[], expected_f64: c.expected_f64, torch_f32_max_abs_err: c.torch_f32_max_abs_err }];
    for (const step of steps) {
      layer.train(step.mode === "train");
      const e = step.expected_f64;
      const errs = step.torch_f32_max_abs_err;
      collect(misses, "y", layer.forward(f32(step.x), shape), e, errs);
      collect(misses, "running_mean", layer.runningMean, e, errs);
      collect(misses, "running_var", layer.runningVar, e, errs);
      if (c.op === "backward") {
        collect(misses, "dx", layer.backward(f32(c.inputs.dy)), e, errs);
        collect(misses, "dgamma", layer.weightGrad, e, errs);
        collect(misses, "dbeta", layer.biasGrad, e, errs);
      }
    }
    expect(misses).toEqual([]);
  });

  it.each(ghostCases.map((c) => [c.name, c] as const))("with ghost batches, PyTorch chunk by chunk: %s", async (_, c) => {
    const bn = await backend(name);
    const [n, ch, ...spatial] = c.shape;
    const shape = c.layout === "NHWC" ? [n, ...spatial, ch] : c.shape;
    const layout = c.layout === "NHWC" ? "channels-last" : "channels-first";
    const layer = new bn.BatchNorm(ch, { eps: c.eps, momentum: c.momentum, affine: c.affine, layout, virtualBatchSize: c.virtual_batch_size, renorm: { rMax: 1, dMax: 0 } });
    layer.loadStateDict({
      ...(c.affine ? { weight: c.inputs.weight, bias: c.inputs.bias } : {}),
      running_mean: c.inputs.running_mean, running_var: c.inputs.running_var, num_batches_tracked: c.inputs.num_batches_tracked,
    });
    const misses: string[] = [];
    const e = c.expected_f64;
    const errs = c.torch_f32_max_abs_err;
    collect(misses, "y", layer.forward(f32(c.inputs.x), shape), e, errs);
    collect(misses, "running_mean", layer.runningMean, e, errs);
    collect(misses, "running_var", layer.runningVar, e, errs);
    collect(misses, "dx", layer.backward(f32(c.inputs.dy)), e, errs);
    collect(misses, "dweight", layer.weightGrad, e, errs);
    collect(misses, "dbias", layer.biasGrad, e, errs);
    expect(layer.numBatchesTracked).toBe(e.num_batches_tracked);
    expect(misses).toEqual([]);
  });
});

const bits = (a: ArrayLike<number>) => Array.from(new Uint32Array(Float32Array.from(a).buffer));

/** Two modules with the same parameters; `renorm` on the first. */
function pair(bn: Backend, C: number, options: object, renorm: object): [BatchNorm, BatchNorm] {
  const a = new bn.BatchNorm(C, { ...options, renorm });
  const b = new bn.BatchNorm(C, options);
  for (const layer of [a, b]) {
    layer.weight!.set(randn(C, 5, 0.5, 1));
    layer.bias!.set(randn(C, 6));
  }
  return [a, b];
}

describe.each(BACKENDS)("batch renormalization, %s backend", (name) => {
  it("warm-up steps give plain BN's bits; after them the output differs; eval is plain eval", async () => {
    const bn = await backend(name);
    const shape = [6, 4, 5];
    const [renormed, plain] = pair(bn, 4, {}, { rMax: 1.2, dMax: 0.1, warmupSteps: 2 });
    expect(renormed.renorm).toEqual({ rMax: 1.2, dMax: 0.1, warmupSteps: 2 });
    for (let step = 0; step < 3; step++) {
      const x = batch(shape, "channels-first", 30 + step);
      const dy = randn(x.length, 40 + step);
      const a = renormed.forward(x, shape);
      const b = plain.forward(x, shape);
      const da = renormed.backward(dy);
      const db = plain.backward(dy);
      if (step < 2) {
        expect(bits(a)).toEqual(bits(b));
        expect(bits(da)).toEqual(bits(db));
        expect(bits(renormed.weightGrad!)).toEqual(bits(plain.weightGrad!));
      } else {
        expect(bits(a)).not.toEqual(bits(b));
        expect(bits(renormed.weightGrad!)).not.toEqual(bits(plain.weightGrad!));
      }
      // the running statistics are updated as usual, from the batch statistics
      expect(bits(renormed.runningMean!)).toEqual(bits(plain.runningMean!));
      expect(bits(renormed.runningVar!)).toEqual(bits(plain.runningVar!));
    }
    renormed.eval();
    plain.eval();
    const x = batch(shape, "channels-first", 50);
    expect(bits(renormed.forward(x, shape))).toEqual(bits(plain.forward(x, shape)));
    const dy = randn(x.length, 51);
    expect(bits(renormed.backward(dy))).toEqual(bits(plain.backward(dy)));
  });

  it("renorm is writable (a schedule for rMax and dMax); null switches it off", async () => {
    const bn = await backend(name);
    const shape = [6, 4, 5];
    const [a, b] = pair(bn, 4, {}, { rMax: 1.1, dMax: 0 });
    a.renorm = { rMax: 2, dMax: 0.5 };
    expect(a.renorm).toEqual({ rMax: 2, dMax: 0.5, warmupSteps: 0 });
    expect(Object.isFrozen(a.renorm)).toBe(true);
    a.renorm = null;
    const x = batch(shape, "channels-first", 60);
    expect(bits(a.forward(x, shape))).toEqual(bits(b.forward(x, shape)));
  });
});

describe.each(BACKENDS)("batch renormalization: errors and JSON, %s backend", (name) => {
  const bad: [unknown, RegExp][] = [
    [{ rMax: 0.5, dMax: 0 }, /^renorm\.rMax: expected a finite number >= 1, got 0\.5/],
    [{ rMax: NaN, dMax: 0 }, /^renorm\.rMax: expected a finite number >= 1, got NaN/],
    [{ rMax: "2", dMax: 0 }, /^renorm\.rMax: expected a finite number >= 1, got "2"/],
    [{ dMax: 0 }, /^renorm\.rMax: expected a finite number >= 1, got undefined/],
    [{ rMax: 2, dMax: -1 }, /^renorm\.dMax: expected a finite number >= 0, got -1/],
    [{ rMax: Infinity, dMax: 0 }, /^renorm\.rMax: expected a finite number >= 1, got Infinity/],
    [{ rMax: 2, dMax: Infinity }, /^renorm\.dMax: expected a finite number >= 0, got Infinity/],
    [{ rMax: 2 }, /^renorm\.dMax: expected a finite number >= 0, got undefined/],
    [{ rMax: 2, dMax: 1, warmupSteps: 1.5 }, /^renorm\.warmupSteps: expected a non-negative integer, got 1\.5/],
    [{ rMax: 2, dMax: 1, warmupSteps: -1 }, /^renorm\.warmupSteps: expected a non-negative integer, got -1/],
    [{ rmax: 2, dMax: 1 }, /^renorm\.rmax: unknown option \(did you mean 'rMax'\?\)/],
    [5, /^renorm: expected an object, got 5/],
  ];

  it.each(bad)("renorm %o is a named error, in the constructor and the setter, with nothing changed", async (settings, message) => {
    const bn = await backend(name);
    expect(() => new bn.BatchNorm(3, { renorm: settings as never })).toThrow(message);
    const layer = new bn.BatchNorm(3, { renorm: { rMax: 2, dMax: 1 } });
    layer.forward(randn(24, 1, 2, 1), [4, 3, 2]);
    const before = layer.stateDict();
    expect(() => (layer.renorm = settings as never)).toThrow(message);
    expect(layer.renorm).toEqual({ rMax: 2, dMax: 1, warmupSteps: 0 });
    expect(layer.stateDict()).toEqual(before);
  });

  it("renorm needs running statistics", async () => {
    const bn = await backend(name);
    expect(() => new bn.BatchNorm(3, { trackRunningStats: false, renorm: { rMax: 2, dMax: 1 } })).toThrow(/^renorm: needs running statistics \(trackRunningStats: true\)/);
    const layer = new bn.BatchNorm(3, { trackRunningStats: false });
    expect(() => (layer.renorm = { rMax: 2, dMax: 1 })).toThrow(/^renorm: needs running statistics/);
    expect(layer.renorm).toBeNull();
  });

  it("a failing forward changes nothing (running statistics, counter, saved forward)", async () => {
    const bn = await backend(name);
    const layer = new bn.BatchNorm(3, { renorm: { rMax: 2, dMax: 1 }, virtualBatchSize: 2 });
    layer.forward(randn(24, 1, 2, 1), [4, 3, 2]);
    const dy = randn(24, 2);
    const dx = layer.backward(dy);
    const before = layer.stateDict();
    expect(() => layer.forward(randn(15, 3), [5, 3])).toThrow(/Expected more than 1 value per channel/);
    expect(() => layer.forward(randn(24, 3), [4, 2, 3])).toThrow(/^x: expected 3 channels/);
    expect(layer.stateDict()).toEqual(before);
    layer.zeroGrad();
    expect(bits(layer.backward(dy))).toEqual(bits(dx));
  });

  it("renorm survives toJSON/fromJSON; bad JSON settings are named", async () => {
    const bn = await backend(name);
    const layer = new bn.BatchNorm(3, { renorm: { rMax: 1.5, dMax: 0.5, warmupSteps: 7 }, virtualBatchSize: 2 });
    layer.forward(randn(30, 1, 2, 1), [5, 3, 2]);
    const text = JSON.stringify(layer);
    expect(JSON.parse(text).renorm).toEqual({ rMax: 1.5, dMax: 0.5, warmupSteps: 7 });
    const copy = bn.BatchNorm.fromJSON(text);
    expect(copy.renorm).toEqual(layer.renorm);
    expect(JSON.stringify(copy)).toBe(text);
    const x = batch([5, 3, 2], "channels-first", 70);
    expect(bits(copy.forward(x, [5, 3, 2]))).toEqual(bits(layer.forward(x, [5, 3, 2])));
    const json = JSON.parse(text);
    expect(() => bn.BatchNorm.fromJSON({ ...json, renorm: { rMax: 0, dMax: 0 } })).toThrow(/^json\.renorm\.rMax: expected a finite number >= 1/);
    expect(bn.BatchNorm.fromJSON({ ...json, renorm: undefined }).renorm).toBeNull();
  });
});
