// The functional API: batchNorm (forward, training or inference) and batchNormBackward, with
// PyTorch's semantics (torch.nn.functional.batch_norm and its autograd):
//   y = (x - mean) / sqrt(var + eps) * weight + bias, per channel,
// mean/var from the batch (biased variance) when training or when no running statistics are given,
// else from runningMean/runningVar; training updates running = (1 - momentum) * running +
// momentum * batch, with the unbiased batch variance. See: Ioffe & Szegedy, "Batch Normalization", 2015.
import { Engine, Running, Steps } from "./engine.js";
import { dataOf } from "./memory.js";
import {
  Layout, Tensor, checkBatchStats, checkBoolean, checkChannels, checkEps, checkLayout, checkMomentum, checkOut,
  checkTensor, describe, geometry,
} from "./validate.js";

export interface BatchNormOptions {
  /** Shape in memory order: [N, C, ...spatial] (channels-first) or [N, ...spatial, C] (channels-last). */
  shape: readonly number[];
  layout?: Layout;
  weight?: Tensor | null;
  bias?: Tensor | null;
  runningMean?: Tensor | null;
  runningVar?: Tensor | null;
  /** Normalize with batch statistics and update the running ones (default true). */
  training?: boolean;
  /** Running-average factor in [0, 1] (default 0.1). */
  momentum?: number;
  /** Added to the variance (default 1e-5). */
  eps?: number;
  /** Destination for y (a WasmTensor avoids every tensor-sized copy); may be x itself. */
  out?: Tensor | null;
}

export interface BatchNormResult {
  y: Float32Array;
  /** Per-channel mean the forward normalized with. */
  mean: Float32Array;
  /** Per-channel 1 / sqrt(var + eps) the forward normalized with. */
  invstd: Float32Array;
}

export interface BatchNormBackwardOptions {
  shape: readonly number[];
  layout?: Layout;
  weight?: Tensor | null;
  eps?: number;
  /** The forward used batch statistics (default true): pass its `mean` and `invstd`. */
  training?: boolean;
  mean?: Tensor | null;
  invstd?: Tensor | null;
  /** With training: false, the running statistics the forward used (treated as constants). */
  runningMean?: Tensor | null;
  runningVar?: Tensor | null;
  /** Destination for dx; may be dy itself. */
  out?: Tensor | null;
}

export interface BatchNormBackwardResult {
  dx: Float32Array;
  /** Gradient for weight (returned also without a weight: it is that of an implicit weight of 1). */
  dweight: Float32Array;
  dbias: Float32Array;
}

/**
 * The low part (mean - f32(mean)) of each `mean` array batchNorm returned. When backward gets that
 * same array back, it adds it, so a large mean keeps its precision in dx.
 */
const meanLows = new WeakMap<Float32Array, Float32Array>();

export function batchNorm(engine: Engine, x: Tensor, options: BatchNormOptions): BatchNormResult {
  return engine.run("batchNorm", batchNormSteps(engine, x, options));
}

/** batchNorm on the worker pool: resolves with the same result, never blocking the caller. */
export function batchNormAsync(engine: Engine, x: Tensor, options: BatchNormOptions): Promise<BatchNormResult> {
  return engine.runAsync(() => batchNormSteps(engine, x, options));
}

function* batchNormSteps(engine: Engine, x: Tensor, options: BatchNormOptions): Steps<BatchNormResult> {
  const memory = engine.memory;
  if (options === null || typeof options !== "object") throw new TypeError(`options: expected an object, got ${describe(options)}`);
  checkTensor("x", x, memory);
  const g = geometry(options.shape, checkLayout(options.layout), x.length);
  const weight = checkChannels("weight", options.weight, g.c, memory);
  const bias = checkChannels("bias", options.bias, g.c, memory);
  const runningMean = checkChannels("runningMean", options.runningMean, g.c, memory);
  const runningVar = checkChannels("runningVar", options.runningVar, g.c, memory);
  if (!runningMean !== !runningVar) {
    throw new TypeError(`runningMean, runningVar: give both or neither, got only ${runningMean ? "runningMean" : "runningVar"}`);
  }
  const training = checkBoolean("training", options.training, true);
  const momentum = checkMomentum(options.momentum, false)!;
  const eps = checkEps(options.eps);
  const out = checkOut("out", options.out, x.length, memory);
  const running: Running | null = runningMean && { mean: runningMean, variance: runningVar! };
  const batchStats = training || !running;
  if (batchStats) checkBatchStats(g);

  if (g.length === 0) {
    const y = out ? dataOf(out) : new Float32Array(0);
    return { y, mean: new Float32Array(g.c).fill(NaN), invstd: new Float32Array(g.c).fill(NaN) };
  }
  const sc = engine.scratch(g.c);
  const y = out ?? new Float32Array(g.length);
  yield* engine.forward(engine.operand(x), engine.operand(y), g, sc, weight, bias, eps, batchStats, running, training && running ? momentum : null);
  // the low part matters only to a backward through batch statistics
  const { mean, meanLow, invstd } = engine.meanAndInvstd(sc, batchStats);
  if (meanLow) meanLows.set(mean, meanLow);
  return { y: dataOf(y), mean, invstd };
}

export function batchNormBackward(engine: Engine, dy: Tensor, x: Tensor, options: BatchNormBackwardOptions): BatchNormBackwardResult {
  return engine.run("batchNormBackward", batchNormBackwardSteps(engine, dy, x, options));
}

/** batchNormBackward on the worker pool: resolves with the same result, never blocking the caller. */
export function batchNormBackwardAsync(engine: Engine, dy: Tensor, x: Tensor, options: BatchNormBackwardOptions): Promise<BatchNormBackwardResult> {
  return engine.runAsync(() => batchNormBackwardSteps(engine, dy, x, options));
}

function* batchNormBackwardSteps(engine: Engine, dy: Tensor, x: Tensor, options: BatchNormBackwardOptions): Steps<BatchNormBackwardResult> {
  const memory = engine.memory;
  if (options === null || typeof options !== "object") throw new TypeError(`options: expected an object, got ${describe(options)}`);
  checkTensor("dy", dy, memory);
  checkTensor("x", x, memory);
  const g = geometry(options.shape, checkLayout(options.layout), x.length);
  if (dy.length !== x.length) throw new RangeError(`dy: expected length ${x.length} (as x), got ${dy.length}`);
  const weight = checkChannels("weight", options.weight, g.c, memory);
  const training = checkBoolean("training", options.training, true);
  const eps = checkEps(options.eps);
  const out = checkOut("out", options.out, x.length, memory);
  let mean64: Float64Array;
  let invstd64: Float64Array;
  if (training) {
    const mean = checkChannels("mean", options.mean, g.c, memory);
    const invstd = checkChannels("invstd", options.invstd, g.c, memory);
    if (!mean || !invstd) {
      throw new TypeError(
        `${mean ? "invstd" : "mean"}: required with training: true (pass the mean and invstd batchNorm returned), got ${describe(mean ? options.invstd : options.mean)}`,
      );
    }
    mean64 = new Float64Array(dataOf(mean));
    invstd64 = new Float64Array(dataOf(invstd));
    const low = mean instanceof Float32Array ? meanLows.get(mean) : undefined;
    if (low) for (let i = 0; i < low.length; i++) mean64[i] += low[i];
  } else {
    const rm = checkChannels("runningMean", options.runningMean, g.c, memory);
    const rv = checkChannels("runningVar", options.runningVar, g.c, memory);
    if (!rm || !rv) {
      throw new TypeError(`${rm ? "runningVar" : "runningMean"}: required with training: false, got ${describe(rm ? options.runningVar : options.runningMean)}`);
    }
    mean64 = new Float64Array(dataOf(rm));
    invstd64 = Float64Array.from(dataOf(rv), (v) => 1 / Math.sqrt(v + eps));
  }

  if (g.length === 0) {
    const dx = out ? dataOf(out) : new Float32Array(0);
    return { dx, dweight: new Float32Array(g.c), dbias: new Float32Array(g.c) };
  }
  const sc = engine.scratch(g.c);
  const dx = out ?? new Float32Array(g.length);
  const grads = yield* engine.backward(engine.operand(dy), engine.operand(x), engine.operand(dx), g, sc, weight, mean64, invstd64, training);
  return { dx: dataOf(dx), ...grads };
}
