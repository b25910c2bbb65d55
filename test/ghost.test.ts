// Ghost (virtual) batches, `virtualBatchSize` (issue 10 item 5): against PyTorch's BatchNorm called chunk
// by chunk (test/golden-ghost/, made by scripts/make_ghost_golden.py), forward and backward, running
// statistics and counter, through the module and the functional API, sync and async, on both backends,
// 1 and 2 threads (every call split), Float32Arrays staged through small chunks and WasmTensors in place,
// within the library's bar. Also: one ghost call gives the bits of the module called on each chunk in
// turn, eval mode ignores the option, bad options and too-small chunks are named errors with nothing
// changed, and the option survives the module's JSON form.
import { readFileSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { Engine } from "../src/engine.js";
import { Executor } from "../src/executor.js";
import type { Backend, WasmTensor } from "../src/index.js";
import { BACKENDS, THREADS, backend, checkBar, f32 } from "./helpers.js";
import { randn } from "./reference.js";

interface GhostCase {
  name: string;
  layout: "NC" | "NCL" | "NCHW" | "NCDHW" | "NHWC";
  shape: number[];
  virtual_batch_size: number;
  chunks: number;
  eps: number;
  momentum: number | null;
  affine: boolean;
  inputs: {
    x: number[]; dy: number[]; weight: number[] | null; bias: number[] | null;
    running_mean: number[]; running_var: number[]; num_batches_tracked: number;
  };
  expected_f64: Record<string, number[] | number | null>;
  torch_f32_max_abs_err: Record<string, number | null>;
}

const dir = fileURLToPath(new URL("./golden-ghost/", import.meta.url));
const cases: GhostCase[] = readdirSync(dir)
  .filter((f) => f.endsWith(".json"))
  .sort()
  .map((f) => JSON.parse(readFileSync(dir + f, "utf8")));

/** The case's shape in memory order and our layout name. */
function memoryShape(c: GhostCase): { shape: number[]; layout: "channels-first" | "channels-last" } {
  if (c.layout !== "NHWC") return { shape: c.shape, layout: "channels-first" };
  const [n, ch, ...spatial] = c.shape;
  return { shape: [n, ...spatial, ch], layout: "channels-last" };
}

const defaultChunk = Engine.chunkBytes;
const defaultSplit = Executor.splitBytes;
afterAll(() => {
  Engine.chunkBytes = defaultChunk;
  Executor.splitBytes = defaultSplit;
});

type Path = "Float32Array" | "WasmTensor";
const PATHS: Path[] = ["Float32Array", "WasmTensor"];

/** Puts arrays into wasm memory on the WasmTensor path (freed by `done`), else passes them through. */
function placer(bn: Backend, path: Path) {
  const held: WasmTensor[] = [];
  return {
    put(a: Float32Array): Float32Array | WasmTensor {
      if (path === "Float32Array") return a;
      const t = bn.alloc(a.length);
      t.data.set(a);
      held.push(t);
      return t;
    },
    read: (v: Float32Array | WasmTensor): Float32Array => ("data" in v ? v.data : v),
    done: () => held.forEach((t) => t.free()),
  };
}

/** Checks one quantity of a case against its float64 answer on the case's bar; pushes misses. */
function collect(misses: string[], c: GhostCase, q: string, ours: ArrayLike<number> | null): void {
  const exp = c.expected_f64[q];
  if (exp === null || exp === undefined) return;
  if (ours === null) return void misses.push(`${q}: not produced`);
  const m = checkBar(q, ours, exp as number[], c.torch_f32_max_abs_err[q]!);
  if (m) misses.push(m);
}

describe.each(BACKENDS.flatMap((b) => THREADS.map((t) => [b, t] as const)))("ghost batches against PyTorch chunk by chunk, %s backend, %i thread(s)", (name, threads) => {
  describe.each(PATHS)("%s", (path) => {
    it.each(cases.map((c) => [c.name, c] as const))("%s: module, sync and async", async (_, c) => {
      const bn = await backend(name, threads);
      Engine.chunkBytes = 256;
      Executor.splitBytes = 0;
      const { shape, layout } = memoryShape(c);
      const C = c.shape[1];
      for (const async of [false, true]) {
        const p = placer(bn, path);
        const layer = new bn.BatchNorm(C, { eps: c.eps, momentum: c.momentum, affine: c.affine, layout, virtualBatchSize: c.virtual_batch_size });
        expect(layer.virtualBatchSize).toBe(c.virtual_batch_size);
        layer.loadStateDict({
          ...(c.affine ? { weight: c.inputs.weight!, bias: c.inputs.bias! } : {}),
          running_mean: c.inputs.running_mean, running_var: c.inputs.running_var, num_batches_tracked: c.inputs.num_batches_tracked,
        });
        const x = p.put(f32(c.inputs.x));
        const dy = p.put(f32(c.inputs.dy));
        const misses: string[] = [];
        collect(misses, c, "y", async ? await layer.forwardAsync(x, shape) : layer.forward(x, shape));
        collect(misses, c, "running_mean", layer.runningMean);
        collect(misses, c, "running_var", layer.runningVar);
        expect(layer.numBatchesTracked).toBe(c.expected_f64.num_batches_tracked);
        collect(misses, c, "dx", async ? await layer.backwardAsync(dy) : layer.backward(dy));
        collect(misses, c, "dweight", layer.weightGrad);
        collect(misses, c, "dbias", layer.biasGrad);
        p.done();
        expect(misses, async ? "async" : "sync").toEqual([]);
      }
    });

    it.each(cases.map((c) => [c.name, c] as const))("%s: functional, sync and async", async (_, c) => {
      const bn = await backend(name, threads);
      Engine.chunkBytes = 256;
      Executor.splitBytes = 0;
      const { shape, layout } = memoryShape(c);
      for (const async of [false, true]) {
        const p = placer(bn, path);
        const weight = c.affine ? p.put(f32(c.inputs.weight)) : null;
        const bias = c.affine ? p.put(f32(c.inputs.bias)) : null;
        // the functional API's momentum is a number applied to every chunk: with PyTorch's cumulative
        // average (momentum null) only the outputs compare
        const numeric = c.momentum !== null;
        const runningMean = numeric ? p.put(f32(c.inputs.running_mean)) : null;
        const runningVar = numeric ? p.put(f32(c.inputs.running_var)) : null;
        const x = p.put(f32(c.inputs.x));
        const out = path === "WasmTensor" ? p.put(new Float32Array(c.inputs.x.length)) : null;
        const options = {
          shape, layout, weight, bias, runningMean, runningVar, eps: c.eps, momentum: c.momentum ?? 0.1, out, virtualBatchSize: c.virtual_batch_size,
        };
        const r = async ? await bn.batchNormAsync(x, options) : bn.batchNorm(x, options);
        const misses: string[] = [];
        collect(misses, c, "y", r.y);
        expect(r.mean.length).toBe(c.chunks * c.shape[1]);
        collect(misses, c, "mean", r.mean);
        collect(misses, c, "invstd", r.invstd);
        if (numeric) {
          collect(misses, c, "running_mean", p.read(runningMean!));
          collect(misses, c, "running_var", p.read(runningVar!));
        }
        const bopts = { shape, layout, weight, mean: r.mean, invstd: r.invstd, out, virtualBatchSize: c.virtual_batch_size };
        const dy = p.put(f32(c.inputs.dy));
        const g = async ? await bn.batchNormBackwardAsync(dy, x, bopts) : bn.batchNormBackward(dy, x, bopts);
        collect(misses, c, "dx", g.dx);
        collect(misses, c, "dweight", g.dweight);
        collect(misses, c, "dbias", g.dbias);
        p.done();
        expect(misses, async ? "async" : "sync").toEqual([]);
      }
    });
  });
});

const bits = (a: ArrayLike<number>) => Array.from(new Uint32Array(Float32Array.from(a).buffer));

describe.each(BACKENDS)("ghost batches, %s backend", (name) => {
  const shapes = [
    { shape: [7, 3, 5, 4], layout: "channels-first", v: 3 },
    { shape: [9, 2, 3, 5], layout: "channels-last", v: 2 },
    { shape: [11, 6], layout: "channels-first", v: 4 },
  ] as const;

  it.each(shapes.flatMap((sh) => THREADS.flatMap((threads) => PATHS.map((path) => ({ ...sh, threads, path })))))("one call gives the bits of the module called on each chunk in turn ($layout [$shape], v = $v, $threads thread(s), $path)", async ({ shape, layout, v, threads, path }) => {
    Engine.chunkBytes = 256;
    Executor.splitBytes = 0;
    const bn = await backend(name, threads);
    const C = layout === "channels-last" ? shape[shape.length - 1] : shape[1];
    const length = shape.reduce((a, b) => a * b, 1);
    const per = length / shape[0];
    for (const momentum of [0.2, null]) {
      const ghost = new bn.BatchNorm(C, { layout, momentum, virtualBatchSize: v });
      const plain = new bn.BatchNorm(C, { layout, momentum });
      for (const layer of [ghost, plain]) {
        layer.weight!.set(randn(C, 3, 0.5, 1));
        layer.bias!.set(randn(C, 4));
      }
      const p = placer(bn, path);
      const x = p.put(randn(length, 5, 2, 3));
      const dy = p.put(randn(length, 6));
      const y = ghost.forward(x, shape);
      const dx = ghost.backward(dy);
      const chunk = (t: Float32Array | WasmTensor, n0: number, n: number) => p.read(t).subarray(n0 * per, (n0 + n) * per);
      const ys: number[] = [];
      const dxs: number[] = [];
      const dw = new Float64Array(C);
      const db = new Float64Array(C);
      const size = new Float64Array(C); // sum over chunks of |dweight| + |dbias|: the scale of the chunks' rounding
      for (let n0 = 0; n0 < shape[0]; n0 += v) {
        const n = Math.min(v, shape[0] - n0);
        const part = [n, ...shape.slice(1)];
        ys.push(...plain.forward(chunk(x, n0, n), part));
        dxs.push(...plain.backward(chunk(dy, n0, n)));
        plain.weightGrad!.forEach((g, k) => ((dw[k] += g), (size[k] += Math.abs(g))));
        plain.biasGrad!.forEach((g, k) => ((db[k] += g), (size[k] += Math.abs(g))));
        plain.zeroGrad();
      }
      expect(bits(y)).toEqual(bits(ys));
      expect(bits(dx)).toEqual(bits(dxs));
      expect(bits(ghost.runningMean!)).toEqual(bits(plain.runningMean!));
      expect(bits(ghost.runningVar!)).toEqual(bits(plain.runningVar!));
      expect(ghost.numBatchesTracked).toBe(plain.numBatchesTracked);
      expect(ghost.numBatchesTracked).toBe(Math.ceil(shape[0] / v));
      // the gradients of the chunks add up (in float64, rounded once), within the chunks' own float32 rounding
      for (let k = 0; k < C; k++) {
        expect(Math.abs(ghost.weightGrad![k] - dw[k])).toBeLessThanOrEqual(2 ** -23 * (size[k] + Math.abs(dw[k])));
        expect(Math.abs(ghost.biasGrad![k] - db[k])).toBeLessThanOrEqual(2 ** -23 * (size[k] + Math.abs(db[k])));
      }
      p.done();
    }
  });

  it("v >= N is one chunk: the plain call's bits, mean and invstd of length C", async () => {
    const bn = await backend(name);
    const x = randn(5 * 3 * 4, 9, 1.5, -2);
    const shape = [5, 3, 4];
    const plain = bn.batchNorm(x, { shape });
    for (const v of [5, 6, 1000]) {
      const r = bn.batchNorm(x, { shape, virtualBatchSize: v });
      expect(bits(r.y)).toEqual(bits(plain.y));
      expect(bits(r.mean)).toEqual(bits(plain.mean));
      expect(bits(r.invstd)).toEqual(bits(plain.invstd));
    }
  });

  it("eval mode ignores virtualBatchSize (module and functional, with or without running statistics)", async () => {
    const bn = await backend(name);
    const shape = [6, 4, 3];
    const x = randn(72, 11, 1, 0.5);
    const runningMean = randn(4, 12);
    const runningVar = Float32Array.from(randn(4, 13), (v) => 0.5 + v * v);
    const plain = bn.batchNorm(x, { shape, training: false, runningMean, runningVar });
    const ghost = bn.batchNorm(x, { shape, training: false, runningMean, runningVar, virtualBatchSize: 2 });
    expect(bits(ghost.y)).toEqual(bits(plain.y));
    // without running statistics eval normalizes with the whole batch's statistics, as without the option
    const whole = bn.batchNorm(x, { shape, training: false });
    const wholeGhost = bn.batchNorm(x, { shape, training: false, virtualBatchSize: 2 });
    expect(bits(wholeGhost.y)).toEqual(bits(whole.y));
    expect(wholeGhost.mean.length).toBe(4);
    const dy = randn(72, 14);
    const gb = bn.batchNormBackward(dy, x, { shape, training: false, runningMean, runningVar, virtualBatchSize: 2 });
    const gp = bn.batchNormBackward(dy, x, { shape, training: false, runningMean, runningVar });
    expect(bits(gb.dx)).toEqual(bits(gp.dx));

    for (const trackRunningStats of [true, false]) {
      const a = new bn.BatchNorm(4, { virtualBatchSize: 2, trackRunningStats });
      const b = new bn.BatchNorm(4, { trackRunningStats });
      if (trackRunningStats) {
        for (const layer of [a, b]) layer.loadStateDict({ ...layer.stateDict(), running_mean: runningMean, running_var: runningVar, num_batches_tracked: 3 });
      }
      a.eval();
      b.eval();
      const counter = a.numBatchesTracked;
      expect(bits(a.forward(x, shape))).toEqual(bits(b.forward(x, shape)));
      expect(bits(a.backward(dy))).toEqual(bits(b.backward(dy)));
      expect(a.numBatchesTracked).toBe(counter);
    }
  });

  it("empty batches count once per chunk, as the module called on each chunk", async () => {
    const bn = await backend(name);
    const layer = new bn.BatchNorm(3, { virtualBatchSize: 2 });
    expect(layer.forward(new Float32Array(0), [0, 3, 4]).length).toBe(0);
    expect(layer.numBatchesTracked).toBe(1);
    layer.forward(new Float32Array(0), [5, 3, 0]); // chunks of 2, 2 and 1 image, each empty
    expect(layer.numBatchesTracked).toBe(4);
    expect(Array.from(layer.backward(new Float32Array(0)))).toEqual([]);
    const r = bn.batchNorm(new Float32Array(0), { shape: [5, 3, 0], virtualBatchSize: 2 });
    expect(r.mean.length).toBe(9);
    expect(r.mean.every(Number.isNaN)).toBe(true);
  });
});

describe.each(BACKENDS)("ghost batches: errors, %s backend", (name) => {
  it.each([0, -1, 1.5, NaN, Infinity, "2", true, 2 ** 53])("virtualBatchSize %s is a named error", async (bad) => {
    const bn = await backend(name);
    expect(() => new bn.BatchNorm(3, { virtualBatchSize: bad as number })).toThrow(/^virtualBatchSize: expected an integer >= 1/);
    const runningMean = new Float32Array(3);
    const runningVar = new Float32Array(3).fill(1);
    const x = randn(24, 1);
    expect(() => bn.batchNorm(x, { shape: [4, 3, 2], runningMean, runningVar, virtualBatchSize: bad as number })).toThrow(/^virtualBatchSize: /);
    await expect(bn.batchNormAsync(x, { shape: [4, 3, 2], runningMean, runningVar, virtualBatchSize: bad as number })).rejects.toThrow(/^virtualBatchSize: /);
    expect(Array.from(runningMean)).toEqual([0, 0, 0]);
    expect(Array.from(runningVar)).toEqual([1, 1, 1]);
    expect(() => bn.batchNormBackward(x, x, { shape: [4, 3, 2], mean: new Float32Array(3), invstd: new Float32Array(3), virtualBatchSize: bad as number })).toThrow(/^virtualBatchSize: /);
  });

  it("a chunk with one value per channel is an error before anything changes", async () => {
    const bn = await backend(name);
    for (const layout of ["channels-first", "channels-last"] as const) {
      const layer = new bn.BatchNorm(3, { virtualBatchSize: 2, layout });
      const good = randn(12, 2);
      const y0 = layer.forward(good, [4, 3]);
      const before = layer.stateDict();
      const dy = randn(12, 3);
      const dx0 = layer.backward(dy);
      layer.zeroGrad();
      // [5, 3]: chunks of 2, 2 and 1 row
      expect(() => layer.forward(randn(15, 4), [5, 3])).toThrow(/^virtualBatchSize: chunk 3 of 3: Expected more than 1 value per channel when training, got input size \[1, 3\]$/);
      await expect(layer.forwardAsync(randn(15, 4), [5, 3])).rejects.toThrow(/Expected more than 1 value per channel when training/);
      expect(layer.stateDict()).toEqual(before);
      // the saved forward is still the last good one
      expect(bits(layer.backward(dy))).toEqual(bits(dx0));
      expect(y0.length).toBe(12);
      // a chunk of one image with spatial values is fine
      expect(() => layer.forward(randn(30, 5), layout === "channels-last" ? [5, 2, 3] : [5, 3, 2])).not.toThrow();
    }
    const runningMean = new Float32Array(3);
    const runningVar = new Float32Array(3).fill(1);
    const out = new Float32Array(15).fill(7);
    expect(() => bn.batchNorm(randn(15, 4), { shape: [5, 3], runningMean, runningVar, virtualBatchSize: 4, out })).toThrow(
      /^virtualBatchSize: chunk 2 of 2: Expected more than 1 value per channel when training, got input size \[1, 3\]$/,
    );
    expect(Array.from(runningMean)).toEqual([0, 0, 0]);
    expect(Array.from(runningVar)).toEqual([1, 1, 1]);
    expect(out.every((v) => v === 7)).toBe(true);
  });

  it("backward needs the forward's per-chunk mean and invstd (chunks * C values)", async () => {
    const bn = await backend(name);
    const x = randn(30, 1);
    const shape = [5, 3, 2];
    const r = bn.batchNorm(x, { shape, virtualBatchSize: 2 });
    expect(r.mean.length).toBe(9);
    expect(() => bn.batchNormBackward(x, x, { shape, mean: r.mean, invstd: r.invstd })).toThrow(/^mean: expected length 3 \(one per channel\), got 9/);
    expect(() => bn.batchNormBackward(x, x, { shape, mean: r.mean.subarray(0, 3), invstd: r.invstd, virtualBatchSize: 2 })).toThrow(
      /^mean: expected length 9 \(one per channel and chunk: 3 chunks of virtualBatchSize 2\), got 3/,
    );
    expect(() => bn.batchNormBackward(x, x, { shape, mean: r.mean, invstd: r.invstd.subarray(0, 3), virtualBatchSize: 2 })).toThrow(/^invstd: expected length 9/);
  });
});

describe.each(BACKENDS)("ghost batches: JSON, %s backend", (name) => {
  it("virtualBatchSize survives toJSON/fromJSON; JSON without it loads as none", async () => {
    const bn = await backend(name);
    const layer = new bn.BatchNorm(3, { virtualBatchSize: 4, momentum: null });
    layer.forward(randn(30, 1, 2, 1), [10, 3]);
    const text = JSON.stringify(layer);
    const copy = bn.BatchNorm.fromJSON(text);
    expect(copy.virtualBatchSize).toBe(4);
    expect(JSON.stringify(copy)).toBe(text);
    const x = randn(30, 2);
    expect(bits(copy.forward(x, [10, 3]))).toEqual(bits(layer.forward(x, [10, 3])));
    expect(copy.numBatchesTracked).toBe(layer.numBatchesTracked);
    const plain = JSON.parse(JSON.stringify(new bn.BatchNorm(3)));
    expect(plain.virtualBatchSize).toBeUndefined();
    expect(bn.BatchNorm.fromJSON(plain).virtualBatchSize).toBeNull();
    expect(() => bn.BatchNorm.fromJSON({ ...plain, virtualBatchSize: 0 })).toThrow(/^json\.virtualBatchSize: expected an integer >= 1/);
  });
});
