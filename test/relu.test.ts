// The fused ReLU (activation: 'relu', issue 10 item 2). Against PyTorch's own torch.relu(F.batch_norm(...))
// and autograd (test/golden-relu/, made by scripts/make_relu_golden.py) on both backends, 1 and 2
// threads, sync and async, module and functional, Float32Arrays (whole and staged in small chunks)
// and WasmTensors (the fused channels-first training kernel), held to the bar in helpers.ts. Then the
// mask: on data where many outputs are exactly 0 or within an ulp of it, backward through the ReLU
// must equal, bit for bit, plain backward on dy zeroed where the forward's own output is <= 0 (NaN
// passes), so backward recomputes exactly the outputs the forward clipped. Errors, JSON, module state.
import { readFileSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { Engine } from "../src/engine.js";
import { Executor } from "../src/executor.js";
import type { Backend, BatchNorm, WasmTensor } from "../src/index.js";
import { BACKENDS, THREADS, backend, checkBar, f32, f64, memoryShape, type GoldenCase } from "./helpers.js";
import { randn } from "./reference.js";

const dir = fileURLToPath(new URL("./golden-relu/", import.meta.url));
const cases: GoldenCase[] = readdirSync(dir)
  .filter((f) => f.endsWith(".json"))
  .sort()
  .map((f) => JSON.parse(readFileSync(dir + f, "utf8")));

const defaultChunk = Engine.chunkBytes;
const defaultSplit = Executor.splitBytes;
afterAll(() => {
  Engine.chunkBytes = defaultChunk;
  Executor.splitBytes = defaultSplit;
});

const COMBOS = BACKENDS.flatMap((name) => THREADS.map((threads) => [name, threads] as const));
/** How the tensors reach the kernels. */
const IO = ["Float32Array", "Float32Array in 256-byte chunks", "WasmTensor"] as const;
type Io = (typeof IO)[number];

/** Runs `body` with the engine set up for `io` (every call split over the threads), freeing what it allocated. */
async function withIo<T>(bn: Backend, io: Io, body: (put: (a: Float32Array) => Float32Array | WasmTensor) => Promise<T>): Promise<T> {
  Engine.chunkBytes = io === "Float32Array in 256-byte chunks" ? 256 : defaultChunk;
  Executor.splitBytes = 0;
  const tensors: WasmTensor[] = [];
  const put = (a: Float32Array) => {
    if (io !== "WasmTensor") return a.slice();
    const t = bn.alloc(a.length);
    t.data.set(a);
    tensors.push(t);
    return t;
  };
  try {
    return await body(put);
  } finally {
    for (const t of tensors) t.free();
    Engine.chunkBytes = defaultChunk;
    Executor.splitBytes = defaultSplit;
  }
}

const read = (t: Float32Array | WasmTensor) => ("data" in t ? t.data : t);

/** Adds to `misses` every quantity of `c` that `ours` misses the bar on. */
function collect(misses: string[], label: string, c: GoldenCase, ours: Record<string, ArrayLike<number> | null>): void {
  for (const [q, values] of Object.entries(ours)) {
    const want = c.expected_f64[q];
    if (want === undefined || values === null) continue;
    const m = checkBar(q, values, f64(want), c.torch_f32_max_abs_err[q]);
    if (m) misses.push(`${label}: ${m}`);
  }
}

/** The functional API on case `c`: forward and backward, sync or async. */
async function functional(bn: Backend, c: GoldenCase, io: Io, async: boolean): Promise<Record<string, ArrayLike<number> | null>> {
  return withIo(bn, io, async (put) => {
    const { shape, layout } = memoryShape(c);
    const training = c.mode === "train";
    const weight = c.affine ? put(f32(c.inputs.gamma)) : null;
    const bias = c.affine ? put(f32(c.inputs.beta)) : null;
    const runningMean = put(f32(c.inputs.running_mean));
    const runningVar = put(f32(c.inputs.running_var));
    const x = put(f32(c.inputs.x));
    const dy = put(f32(c.inputs.dy));
    const out = io === "WasmTensor" ? put(new Float32Array(x.length)) : null;
    const options = { shape, layout, weight, bias, runningMean, runningVar, training, momentum: c.momentum!, eps: c.eps, activation: "relu" as const, out };
    const r = async ? await bn.batchNormAsync(x, options) : bn.batchNorm(x, options);
    const y = r.y.slice();
    const stats = training ? { mean: r.mean, invstd: r.invstd } : { runningMean, runningVar };
    const bopts = { shape, layout, weight, bias, eps: c.eps, training, activation: "relu" as const, ...stats };
    const g = async ? await bn.batchNormBackwardAsync(dy, x, bopts) : bn.batchNormBackward(dy, x, bopts);
    return {
      y, dx: g.dx, dgamma: c.affine ? g.dweight : null, dbeta: c.affine ? g.dbias : null,
      ...(training ? { batch_mean: r.mean, save_invstd: r.invstd, running_mean: read(runningMean).slice(), running_var: read(runningVar).slice() } : {}),
    };
  });
}

/** The module on case `c`: forward and backward, sync or async. */
async function module(bn: Backend, c: GoldenCase, io: Io, async: boolean): Promise<Record<string, ArrayLike<number> | null>> {
  return withIo(bn, io, async (put) => {
    const { shape, layout } = memoryShape(c);
    const layer = new bn.BatchNorm(c.shape[1], { eps: c.eps, momentum: c.momentum, affine: c.affine, layout, activation: "relu" });
    layer.loadStateDict({
      ...(c.affine ? { weight: f32(c.inputs.gamma), bias: f32(c.inputs.beta) } : {}),
      running_mean: f32(c.inputs.running_mean), running_var: f32(c.inputs.running_var), num_batches_tracked: 0,
    });
    layer.train(c.mode === "train");
    const x = put(f32(c.inputs.x));
    const dy = put(f32(c.inputs.dy));
    const y = async ? await layer.forwardAsync(x, shape) : layer.forward(x, shape);
    const dx = async ? await layer.backwardAsync(dy) : layer.backward(dy);
    return {
      y, dx, dgamma: layer.weightGrad, dbeta: layer.biasGrad,
      ...(c.mode === "train" ? { running_mean: layer.runningMean, running_var: layer.runningVar } : {}),
    };
  });
}

describe.each(COMBOS)("fused ReLU against PyTorch, %s backend, %i thread(s)", (name, threads) => {
  it.each(cases.map((c) => [c.name, c] as const))("%s: functional and module, sync and async, every input path", async (_, c) => {
    const bn = await backend(name, threads);
    const misses: string[] = [];
    for (const io of IO) {
      for (const async of [false, true]) {
        collect(misses, `functional ${io} ${async ? "async" : "sync"}`, c, await functional(bn, c, io, async));
        collect(misses, `module ${io} ${async ? "async" : "sync"}`, c, await module(bn, c, io, async));
      }
    }
    expect(misses).toEqual([]);
  });
});

/**
 * Integer data whose outputs are often exactly 0 or within an ulp of it: per channel, the bias is
 * chosen from a first plain forward so that y(k) = (k - mean) * invstd * w + bias is about 0 for an
 * integer k in the data; odd channels are symmetric around 0 with bias 0 (exact zeros). With the
 * `running` statistics (eval mode), from those, and NaN and +-Inf in x (they stay in their elements).
 */
function hardData(
  bn: Backend, shape: number[], layout: "channels-first" | "channels-last", seed: number, running: { runningMean: Float32Array; runningVar: Float32Array } | null,
) {
  const length = shape.reduce((a, b) => a * b, 1);
  const c = layout === "channels-last" ? shape[shape.length - 1] : shape[1];
  const spatial = layout === "channels-last" ? 1 : length / (shape[0] * c);
  const chOf = (i: number) => (layout === "channels-last" ? i % c : Math.floor(i / spatial) % c);
  const z = randn(length, seed);
  const x = Float32Array.from(z, (v, i) => (chOf(i) % 2 ? Math.round(2 * v) : Math.round(3 * v + 5)));
  // odd channels: a value and its negative in turn, so the mean is exactly 0
  let flip = 1;
  for (let i = 0; i < length; i++) if (chOf(i) % 2) x[i] = flip = -flip * Math.abs(x[i]) || 0;
  if (running) [x[1], x[length >> 1], x[length - 2]] = [NaN, Infinity, -Infinity];
  // weights with full mantissas, so that w * invstd rounds differently from w * f32(invstd) in many channels
  const weight = Float32Array.from(randn(c, seed + 5), (v, ch) => (ch % 3 === 2 ? -1 : 1) * (0.6 + 0.2 * Math.abs(v)));
  const forward = (bias: Float32Array | null) => bn.batchNorm(x, { shape, layout, weight, bias, ...(running ? { ...running, training: false } : {}) });
  const plain = forward(null);
  const k = (ch: number) => 4 + (ch % 3);
  const bias = Float32Array.from({ length: c }, (_, ch) => (ch % 2 ? 0 : Math.fround(-(k(ch) - plain.mean[ch]) * plain.invstd[ch] * weight[ch])));
  // then nudged by the output at k itself, until it is mostly exactly 0: there a coefficient one ulp
  // off (say, from the float32 invstd) gives +-1 ulp, and half of those would pass their gradient
  for (let round = 0; round < 3; round++) {
    const y = forward(bias).y;
    for (let ch = 0; ch < c; ch += 2) {
      const i = x.findIndex((v, j) => v === k(ch) && chOf(j) === ch);
      if (i >= 0) bias[ch] = Math.fround(bias[ch] - y[i]);
    }
  }
  const dy = randn(length, seed + 1);
  return { x, dy, weight, bias };
}

/** a and b equal element by element (NaN equals NaN; -0 equals 0: the sign of a zero gradient is free). */
function sameValues(what: string, a: ArrayLike<number>, b: ArrayLike<number>, misses: string[]): void {
  for (let i = 0; i < b.length; i++) {
    if (a[i] !== b[i] && !(Number.isNaN(a[i]) && Number.isNaN(b[i]))) {
      misses.push(`${what}[${i}] = ${a[i]}, plain backward on the masked dy ${b[i]}`);
      return;
    }
  }
}

/** dy with 0 where the forward's output y is <= 0 (a NaN output keeps its gradient). */
const masked = (dy: Float32Array, y: Float32Array) => dy.map((v, i) => (y[i] <= 0 ? 0 : v));

const SHAPES = [
  { shape: [3, 4, 5, 7], layout: "channels-first" },
  { shape: [4, 3, 6, 6], layout: "channels-first" },
  { shape: [5, 3, 4, 7], layout: "channels-last" },
  { shape: [40, 6], layout: "channels-first" },
] as const;

describe.each(COMBOS)("the backward's mask is the forward's, bit for bit, %s backend, %i thread(s)", (name, threads) => {
  it.each(SHAPES)("$layout $shape, functional (training and eval, sync and async) and module", async ({ shape, layout }) => {
    const bn = await backend(name, threads);
    Executor.splitBytes = 0;
    const misses: string[] = [];
    try {
      for (const [seed, training] of [[1, true], [2, true], [3, false]] as const) {
        const c = layout === "channels-last" ? shape[shape.length - 1] : shape[1];
        const runningMean = randn(c, seed + 2, 0.5, 3), runningVar = randn(c, seed + 3, 0.2, 2);
        const { x, dy, weight, bias } = hardData(bn, [...shape], layout, seed, training ? null : { runningMean, runningVar });
        const base = { shape, layout, weight, bias, runningMean: runningMean.slice(), runningVar: runningVar.slice(), training };
        const pre = bn.batchNorm(x, { ...base, runningMean: runningMean.slice(), runningVar: runningVar.slice() }).y;
        let near = 0;
        for (const v of pre) if (Math.abs(v) <= 1e-6) near++;
        if (near < pre.length / 20) misses.push(`seed ${seed}: only ${near} outputs within 1e-6 of 0: the data does not test the mask`);
        for (const async of [false, true]) {
          const f = async ? await bn.batchNormAsync(x, { ...base, activation: "relu" }) : bn.batchNorm(x, { ...base, activation: "relu" });
          sameValues(`seed ${seed} y vs max(0, plain y)`, f.y, pre.map((v) => (Number.isNaN(v) ? v : Math.max(0, v))), misses);
          const stats = training ? { mean: f.mean, invstd: f.invstd } : { runningMean, runningVar };
          const bopts = { shape, layout, weight, bias, training, ...stats };
          const ours = async
            ? await bn.batchNormBackwardAsync(dy, x, { ...bopts, activation: "relu" })
            : bn.batchNormBackward(dy, x, { ...bopts, activation: "relu" });
          const want = bn.batchNormBackward(masked(dy, f.y), x, bopts);
          const label = `seed ${seed} ${training ? "training" : "eval"} ${async ? "async" : "sync"}`;
          sameValues(`${label} dx`, ours.dx, want.dx, misses);
          sameValues(`${label} dweight`, ours.dweight, want.dweight, misses);
          sameValues(`${label} dbias`, ours.dbias, want.dbias, misses);
        }
        // the module: its own saved statistics and the forward's weight and bias (changing the bias
        // after forward, as an optimizer step would, leaves the mask the forward's)
        const layer = new bn.BatchNorm(c, { layout, activation: "relu" });
        layer.loadStateDict({ weight, bias, running_mean: runningMean, running_var: runningVar });
        layer.train(training);
        const y = layer.forward(x, [...shape]);
        layer.bias!.fill(0.5);
        const dx = layer.backward(dy);
        const plainLayer = new bn.BatchNorm(c, { layout });
        plainLayer.loadStateDict({ weight, bias, running_mean: runningMean, running_var: runningVar });
        plainLayer.train(training);
        plainLayer.forward(x, [...shape]);
        sameValues(`seed ${seed} module dx`, dx, plainLayer.backward(masked(dy, y)), misses);
        sameValues(`seed ${seed} module dweight`, layer.weightGrad!, plainLayer.weightGrad!, misses);
        sameValues(`seed ${seed} module dbias`, layer.biasGrad!, plainLayer.biasGrad!, misses);
      }
    } finally {
      Executor.splitBytes = defaultSplit;
    }
    expect(misses).toEqual([]);
  });
});

describe.each(BACKENDS)("fused ReLU options, %s backend", (name) => {
  it("a bad activation is a named TypeError, and nothing changes", async () => {
    const bn = await backend(name);
    const x = randn(24, 1), shape = [2, 3, 4];
    const runningMean = new Float32Array(3), runningVar = new Float32Array(3).fill(1);
    const r = bn.batchNorm(x, { shape });
    for (const bad of ["sigmoid", "RELU", true, null, 1]) {
      const message = /^activation: expected 'none' or 'relu', got /;
      expect(() => bn.batchNorm(x, { shape, runningMean, runningVar, activation: bad as never })).toThrow(message);
      await expect(bn.batchNormAsync(x, { shape, runningMean, runningVar, activation: bad as never })).rejects.toThrow(message);
      expect(() => bn.batchNormBackward(x, x, { shape, mean: r.mean, invstd: r.invstd, activation: bad as never })).toThrow(message);
      expect(() => new bn.BatchNorm(3, { activation: bad as never })).toThrow(message);
    }
    expect(Array.from(runningMean)).toEqual([0, 0, 0]);
    expect(Array.from(runningVar)).toEqual([1, 1, 1]);
    const json = { ...JSON.parse(JSON.stringify(new bn.BatchNorm(3))), activation: "gelu" };
    expect(() => bn.BatchNorm.fromJSON(json)).toThrow(/^json\.activation: expected 'none' or 'relu', got "gelu"$/);
    expect(() => bn.batchNormBackward(x, x, { shape, mean: r.mean, invstd: r.invstd, activation: "relu", bias: [1, 2, 3] as never })).toThrow(/^bias: /);
  });

  it("with ghost batches each chunk is masked with its own statistics; renorm is refused", async () => {
    const bn = await backend(name);
    const shape = [10, 3, 8];
    const x = randn(240, 5, 2, 0.3), dy = randn(240, 6);
    const layer = new bn.BatchNorm(3, { virtualBatchSize: 4, activation: "relu" });
    const plain = new bn.BatchNorm(3, { virtualBatchSize: 4 });
    const y = layer.forward(x, shape);
    const before = plain.forward(x, shape);
    expect(Array.from(y)).toEqual(Array.from(before, (v) => (v < 0 ? 0 : v)));
    const misses: string[] = [];
    sameValues("ghost dx", layer.backward(dy), plain.backward(masked(dy, y)), misses);
    sameValues("ghost dweight", layer.weightGrad!, plain.weightGrad!, misses);
    const f = bn.batchNorm(x, { shape, virtualBatchSize: 4, activation: "relu" });
    const g = bn.batchNormBackward(dy, x, { shape, mean: f.mean, invstd: f.invstd, virtualBatchSize: 4, activation: "relu" });
    sameValues("functional ghost dx", g.dx, bn.batchNormBackward(masked(dy, f.y), x, { shape, mean: f.mean, invstd: f.invstd, virtualBatchSize: 4 }).dx, misses);
    expect(misses).toEqual([]);
  });

  it("with batch renormalization the ReLU clips the renormalized output, and backward masks by it", async () => {
    for (const threads of THREADS) {
      const bn = await backend(name, threads);
      for (const { shape, layout } of SHAPES) {
        const c = layout === "channels-last" ? shape[shape.length - 1] : shape[1];
        const length = shape.reduce((a, b) => a * b, 1);
        const opts = { layout, renorm: { rMax: 1.5, dMax: 0.5, warmupSteps: 1 }, virtualBatchSize: 2, momentum: 0.3 } as const;
        const layer = new bn.BatchNorm(c, { ...opts, activation: "relu" });
        const plain = new bn.BatchNorm(c, opts);
        for (const m of [layer, plain]) {
          m.weight!.set(randn(c, 3, 0.5, 1));
          m.bias!.set(randn(c, 4, 0.3));
        }
        const misses: string[] = [];
        for (let step = 0; step < 3; step++) {
          // offset data so r and d clip past the warm-up step
          const x = randn(length, 10 + step, 1 + step, 0.5 * step), dy = randn(length, 20 + step);
          const y = layer.forward(x, shape);
          const before = plain.forward(x, shape);
          sameValues(`step ${step} y`, y, Array.from(before, (v) => (v < 0 ? 0 : v)), misses);
          layer.zeroGrad();
          plain.zeroGrad();
          sameValues(`step ${step} dx`, layer.backward(dy), plain.backward(masked(dy, y)), misses);
          sameValues(`step ${step} dweight`, layer.weightGrad!, plain.weightGrad!, misses);
          sameValues(`step ${step} dbias`, layer.biasGrad!, plain.biasGrad!, misses);
          sameValues(`step ${step} runningVar`, layer.runningVar!, plain.runningVar!, misses);
        }
        expect(misses).toEqual([]);
      }
    }
  });

  it("a frozen module through a ReLU: eval-mode BN + ReLU in every mode, dx masked, no gradients, no update", async () => {
    const bits = (a: Float32Array) => Array.from(new Uint32Array(a.slice().buffer));
    for (const layout of ["channels-first", "channels-last"] as const) {
      const bn = await backend(name, 2);
      const shape = layout === "channels-first" ? [6, 4, 9] : [6, 9, 4];
      const x = randn(216, 7, 2, 0.3), dy = randn(216, 8);
      const make = () => {
        const m = new bn.BatchNorm(4, { layout, activation: "relu" });
        m.runningMean!.set([0.2, -0.1, 0.4, 0]);
        m.runningVar!.set([1.5, 0.5, 2, 1]);
        m.bias!.set([0.1, -0.3, 0, 0.2]);
        return m;
      };
      const frozen = make().freeze();
      const reference = make().eval(); // what a frozen layer computes: eval-mode BN, then ReLU
      const state = JSON.stringify(frozen.stateDict());
      for (const async of [false, true]) {
        const y = async ? await frozen.forwardAsync(x, shape) : frozen.forward(x, shape); // training mode, frozen
        expect(bits(y)).toEqual(bits(reference.forward(x, shape)));
        const dx = async ? await frozen.backwardAsync(dy) : frozen.backward(dy);
        reference.zeroGrad();
        expect(bits(dx)).toEqual(bits(reference.backward(dy)));
        expect(Array.from(y).some((v) => v === 0) && Array.from(y).some((v) => v > 0)).toBe(true);
      }
      expect(frozen.weightGrad).toBe(null); // a frozen module keeps no gradients
      expect(JSON.stringify(frozen.stateDict())).toBe(state); // no update, no count
    }
  });

  it("'none' is the default and the same as no activation; the module keeps its activation through JSON", async () => {
    const bn = await backend(name);
    const x = randn(60, 2, 2, 0.5), shape = [4, 3, 5];
    const bias = randn(3, 3);
    expect(bn.batchNorm(x, { shape, bias, activation: "none" }).y).toEqual(bn.batchNorm(x, { shape, bias }).y);
    const layer: BatchNorm = new bn.BatchNorm(3, { activation: "relu" });
    expect(layer.activation).toBe("relu");
    expect(new bn.BatchNorm(3).activation).toBe("none");
    const text = JSON.stringify(layer);
    expect(JSON.parse(text).activation).toBe("relu");
    const copy = bn.BatchNorm.fromJSON(text);
    expect(copy.activation).toBe("relu");
    expect(Math.min(...copy.forward(x, shape))).toBe(0);
    // JSON written before the option existed loads as 'none'
    const { activation: _, ...old } = JSON.parse(text);
    expect(bn.BatchNorm.fromJSON(old).activation).toBe("none");
  });
});
