// The functional API: batchNorm (forward, training or inference) and batchNormBackward, with
// PyTorch's semantics (torch.nn.functional.batch_norm and its autograd):
//   y = (x - mean) / sqrt(var + eps) * weight + bias, per channel,
// mean/var from the batch (biased variance) when training or when no running statistics are given,
// else from runningMean/runningVar; training updates running = (1 - momentum) * running +
// momentum * batch, with the unbiased batch variance. See: Ioffe & Szegedy, "Batch Normalization", 2015.
// `activation: 'relu'` fuses torch.relu into the same passes: y = max(0, y), and backward zeroes dy
// where that output was <= 0 (the mask is recomputed from x, never stored).
import type { Backend } from "./index.js";
import { Engine, GivenStatistics, Operand, Reduced, Running, Steps } from "./engine.js";
import { backwardChunks, chunksOf, concat, forwardChunks } from "./ghost.js";
import { WasmMemory, WasmTensor } from "./memory.js";
import {
  BatchNormBackwardReduced, BatchNormBackwardReduceOptions, BatchStatisticsInput, checkPart, f64Row,
} from "./split-phase.js";
import {
  Activation, Layout, Tensor, checkActivation, checkBoolean, checkChannels, checkChunkChannels, checkChunkStats, checkDisjoint, checkEps,
  checkKeys, checkLayout, checkMomentum, checkOut, checkRunningVariance, checkTensor, checkVirtualBatchSize, describe, geometry,
  Geometry, RunningVariance,
} from "./validate.js";

/**
 * Options of {@link Backend.batchNorm}. Per-channel arrays are Float32Arrays or WasmTensors of length
 * C (a Float32Array view inside a WasmTensor counts as one); `null` or absent means none.
 */
export interface BatchNormOptions {
  /**
   * Shape in memory order: `[N, C, ...spatial]` channels-first (0 to 3 spatial dimensions, as
   * BatchNorm1d/2d/3d) or `[N, ...spatial, C]` channels-last; the product must equal x's length and
   * C be at most 2^24. Required.
   */
  shape: readonly number[];
  /** Where the channel axis is. Default `'channels-first'`. */
  layout?: Layout;
  /** Per-channel scale. Default none (1). */
  weight?: Tensor | null;
  /** Per-channel shift. Default none (0). */
  bias?: Tensor | null;
  /** Running mean (give both running statistics or neither): read in eval mode, updated in place when training. Default none. */
  runningMean?: Tensor | null;
  /** Running (unbiased) variance, as runningMean. Default none. */
  runningVar?: Tensor | null;
  /**
   * `true`: normalize with the batch's statistics and update the running ones. `false`: normalize
   * with the running statistics (without them, with the batch's, as PyTorch). Default `true`.
   */
  training?: boolean;
  /** Running-average factor in [0, 1]: `running = (1 - momentum) * running + momentum * batch`. Default `0.1`. */
  momentum?: number;
  /**
   * Which batch variance updates `runningVar`: `'unbiased'` (PyTorch: divided by n - 1) or
   * `'biased'` (Keras, TensorFlow.js, ONNX: divided by n). Normalizing always uses the biased one.
   * Default `'unbiased'`.
   */
  runningVariance?: RunningVariance;
  /** Added to the variance: a finite number > 0. Default `1e-5`. */
  eps?: number;
  /**
   * `'relu'`: y = max(0, y) in the same pass over memory, as `torch.relu(F.batch_norm(x, ...))` (a
   * NaN stays NaN). Backward through it takes `activation: 'relu'` and the same weight and bias.
   * Default `'none'`.
   */
  activation?: Activation;
  /**
   * Destination for y, of x's length (a WasmTensor avoids every tensor-sized copy). It may be x
   * itself (in place) but must not otherwise share memory with any argument. Default a new Float32Array.
   */
  out?: Tensor | null;
  /**
   * Ghost batches, with `training: true`: the batch is cut into consecutive chunks of this many
   * samples along N (the last chunk holds the rest; a size >= N is one chunk), each normalized with
   * its own statistics, the running statistics updated once per chunk in order with `momentum`: the
   * call made on each chunk in turn. Every chunk needs more than one value per channel. `mean` and
   * `invstd` then hold C values per chunk, chunk after chunk (`chunks * C`, chunks = ceil(N / size)).
   * Ignored with `training: false` (also without running statistics: the whole batch's statistics).
   * An integer >= 1, or `null` for none. Default `null`.
   */
  virtualBatchSize?: number | null;
  /**
   * SyncBN: normalize with these statistics (`bn.mergeStatistics` of every rank's
   * `bn.batchStatistics`) instead of the batch's, and update the running statistics with them (the
   * merged count's unbiased variance). Training only, without `virtualBatchSize`; the count must be
   * more than 1. x may then be empty (a rank without data still updates its running statistics).
   * Default none.
   */
  statistics?: BatchStatisticsInput | null;
}

/** What {@link Backend.batchNorm} returns. */
export interface BatchNormResult {
  /** The output: `out`'s data when given (a WasmTensor's current view), else a new Float32Array. */
  y: Float32Array;
  /**
   * Per-channel mean the forward normalized with (length C, or C per ghost batch with
   * `virtualBatchSize`; its own ArrayBuffer; NaN for an empty batch). Pass this very array to
   * backward: it also carries the mean's low part, for precision.
   */
  mean: Float32Array;
  /** Per-channel 1 / sqrt(var + eps) the forward normalized with (laid out as `mean`; its own ArrayBuffer). */
  invstd: Float32Array;
}

/** Options of {@link Backend.batchNormBackward}; per-channel arrays as in {@link BatchNormOptions}. */
export interface BatchNormBackwardOptions {
  /** The forward's shape in memory order. Required. */
  shape: readonly number[];
  /** The forward's layout. Default `'channels-first'`. */
  layout?: Layout;
  /** The forward's weight. Default none (1). */
  weight?: Tensor | null;
  /**
   * The forward's bias: used with `activation: 'relu'` only, where it is part of the output whose
   * sign decides the mask (a bias given to the forward but not here cannot be detected: pass the same
   * one). Default none (0).
   */
  bias?: Tensor | null;
  /** The forward's eps (used with `training: false`). Default `1e-5`. */
  eps?: number;
  /** The forward used batch statistics: pass its `mean` and `invstd`. Default `true`. */
  training?: boolean;
  /** With `training: true`: the `mean` the forward returned. */
  mean?: Tensor | null;
  /** With `training: true`: the `invstd` the forward returned. */
  invstd?: Tensor | null;
  /** With `training: false`: the running mean the forward used (a constant). */
  runningMean?: Tensor | null;
  /** With `training: false`: the running variance the forward used (a constant). */
  runningVar?: Tensor | null;
  /**
   * `'relu'`: the forward had `activation: 'relu'`: dy counts as 0 where the forward's output was <= 0
   * (its gradient is 0 at exactly 0; a NaN output passes its gradient), as torch's autograd of
   * `torch.relu(F.batch_norm(x, ...))`. The outputs are recomputed from x, the forward's `mean` and
   * `invstd` (pass the very arrays it returned: they also carry the float64 values it used, so the
   * mask is the forward's bit for bit), `weight` and `bias`. Default `'none'`.
   */
  activation?: Activation;
  /** Destination for dx; may be dy or x itself, and must not otherwise share memory with any argument. Default a new Float32Array. */
  out?: Tensor | null;
  /**
   * The forward's `virtualBatchSize`: with `training: true`, backward runs per ghost batch and
   * `mean` and `invstd` hold the forward's C values per chunk. Ignored with `training: false`. Default `null`.
   */
  virtualBatchSize?: number | null;
  /**
   * SyncBN: the sum over every rank of `bn.batchNormBackwardReduce`'s sums, used instead of this
   * shard's own (with `count`, training only, without `virtualBatchSize`). dweight and dbias are
   * then those of the whole batch. Default none.
   */
  reduced?: { sumDy: Float64Array | readonly number[]; sumDyXc: Float64Array | readonly number[] } | null;
  /** With `reduced`: the count of the merged statistics the forward normalized with. */
  count?: number;
}

/** What {@link Backend.batchNormBackward} returns. */
export interface BatchNormBackwardResult {
  /** Gradient for x: `out`'s data when given, else a new Float32Array. */
  dx: Float32Array;
  /** Gradient for weight, per channel (also without a weight: that of an implicit weight of 1). */
  dweight: Float32Array;
  /** Gradient for bias, per channel: the sum of dy. */
  dbias: Float32Array;
}

/**
 * Key of the low part (mean - f32(mean)) carried by each `mean` array a training forward returns (a
 * non-enumerable property: a WeakMap entry per call measured slower, its GC cost dominating tiny
 * calls). When backward gets that same array back, it adds it, so a large mean keeps its precision in dx.
 */
const LOW = Symbol("mean low part");

/**
 * Key of the float64 invstd carried by the `invstd` array a training forward with a fused ReLU
 * returns. When backward gets that same array back it uses it: it rebuilds the forward's coefficients
 * from it, so its mask is the forward's.
 */
const INVSTD = Symbol("float64 invstd");

const FORWARD_OPTIONS: ReadonlySet<string> = new Set([
  "shape", "layout", "weight", "bias", "runningMean", "runningVar", "training", "momentum", "runningVariance", "eps", "activation", "out",
  "virtualBatchSize", "statistics",
]);
const BACKWARD_OPTIONS: ReadonlySet<string> = new Set([
  "shape", "layout", "weight", "bias", "eps", "training", "mean", "invstd", "runningMean", "runningVar", "activation", "out",
  "virtualBatchSize", "reduced", "count",
]);

/** What a call returns for its `out` (resolved to `op`): a WasmTensor's view, a fresh view if growth detached `out`, else `out`. */
function resultOf(memory: WasmMemory, out: Tensor, op: Operand, length: number): Float32Array {
  if (out instanceof WasmTensor) return out.data;
  return typeof op === "number" && out.length !== length ? memory.f32(op, length) : out;
}

export function batchNorm(engine: Engine, x: Tensor, options: BatchNormOptions): BatchNormResult {
  return engine.run("batchNorm", batchNormSteps(engine, x, options));
}

/** batchNorm on the worker pool: resolves with the same result, never blocking the caller. */
export function batchNormAsync(engine: Engine, x: Tensor, options: BatchNormOptions): Promise<BatchNormResult> {
  return engine.runAsync(() => batchNormSteps(engine, x, options));
}

function* batchNormSteps(engine: Engine, x: Tensor, options: BatchNormOptions): Steps<BatchNormResult> {
  const memory = engine.memory;
  checkKeys(options, FORWARD_OPTIONS);
  const xOp = checkTensor("x", x, memory);
  const length = x.length;
  const g = geometry(options.shape, checkLayout(options.layout), length);
  const weight = checkChannels("weight", options.weight, g.c, memory);
  const bias = checkChannels("bias", options.bias, g.c, memory);
  const runningMean = checkChannels("runningMean", options.runningMean, g.c, memory);
  const runningVar = checkChannels("runningVar", options.runningVar, g.c, memory);
  if (!runningMean !== !runningVar) {
    throw new TypeError(`runningMean, runningVar: give both or neither, got only ${runningMean ? "runningMean" : "runningVar"}`);
  }
  const training = checkBoolean("training", options.training, true);
  const momentum = checkMomentum(options.momentum, false)!;
  const biased = checkRunningVariance(options.runningVariance) === "biased";
  const eps = checkEps(options.eps);
  const relu = checkActivation(options.activation) === "relu";
  const virtualBatchSize = checkVirtualBatchSize(options.virtualBatchSize);
  const out = checkOut("out", options.out, length, memory);
  if (out !== null) {
    checkDisjoint(out, length, "x", xOp, length, true);
    checkDisjoint(out, length, "weight", weight, g.c, false);
    checkDisjoint(out, length, "bias", bias, g.c, false);
    checkDisjoint(out, length, "runningMean", runningMean, g.c, false);
    checkDisjoint(out, length, "runningVar", runningVar, g.c, false);
  }
  const running: Running | null = runningMean !== null ? { mean: runningMean, variance: runningVar!, biased } : null;
  const batchStats = training || !running;
  const chunks = chunksOf(g, training ? virtualBatchSize : null);
  const given = checkGiven(options.statistics, g.c, training, virtualBatchSize);
  if (batchStats && !given) checkChunkStats(chunks);

  if (given) {
    const sc = engine.scratch(g.c);
    const y = out ?? new Float32Array(length);
    const stats = yield* engine.forward(xOp, y, g, sc, { weight, bias, eps, stats: given, running, factor: running ? momentum : null, relu });
    return { y: out !== null ? resultOf(memory, options.out!, out, length) : (y as Float32Array), ...returned(stats.mean, stats.invstd, relu) };
  }
  if (length === 0) {
    const y = out !== null ? resultOf(memory, options.out!, out, 0) : new Float32Array(0);
    return { y, mean: new Float32Array(chunks.length * g.c).fill(NaN), invstd: new Float32Array(chunks.length * g.c).fill(NaN) };
  }
  const sc = engine.scratch(g.c);
  const y = out ?? new Float32Array(length);
  const factor = training && running ? momentum : null;
  const o = { weight, bias, eps, stats: batchStats ? "batch" : "running", running, relu } as const;
  const stats = yield* forwardChunks(engine, xOp, y, chunks, sc, o, () => ({ factor, reweight: null }));
  const { mean, invstd } = batchStats ? returned(concat(stats.map((s) => s.mean)), concat(stats.map((s) => s.invstd)), relu) : {
    mean: new Float32Array(stats[0].mean), invstd: new Float32Array(stats[0].invstd),
  };
  return { y: out !== null ? resultOf(memory, options.out!, out, length) : (y as Float32Array), mean, invstd };
}

/**
 * The f32 mean and invstd a forward through batch (or given) statistics returns, carrying what its
 * backward needs: the mean's low part, and with a ReLU the f64 invstd its mask is rebuilt from.
 */
function returned(mean64: Float64Array, invstd64: Float64Array, relu: boolean): { mean: Float32Array; invstd: Float32Array } {
  const mean = new Float32Array(mean64);
  const invstd = new Float32Array(invstd64);
  Object.defineProperty(mean, LOW, { value: Array.from(mean64, (m, i) => m - mean[i]) });
  if (relu) Object.defineProperty(invstd, INVSTD, { value: invstd64 });
  return { mean, invstd };
}

/** Adds the low part a forward's returned `mean` carries (when `mean` is that array) to its f64 copy. */
function addLow(mean64: Float64Array, mean: unknown): void {
  const low = mean instanceof Float32Array ? (mean as { [LOW]?: number[] })[LOW] : undefined;
  if (low) for (let i = 0; i < low.length; i++) mean64[i] += low[i];
}

/** The f64 invstd a forward with a ReLU attached to the `invstd` it returned, else the given values widened. */
function batchInvstd(memory: WasmMemory, invstd: unknown, op: Operand, rows: number): Float64Array {
  const exact = invstd instanceof Float32Array ? (invstd as { [INVSTD]?: Float64Array })[INVSTD] : undefined;
  return exact?.length === rows ? exact : new Float64Array(memory.floats(op, rows));
}

/** The `statistics` option checked: null, or given statistics for a training forward without ghost batches. */
function checkGiven(v: unknown, c: number, training: boolean, virtualBatchSize: number | null): GivenStatistics | null {
  if (v === undefined || v === null) return null;
  if (!training) throw new TypeError("statistics: only with training: true (eval mode normalizes with the running statistics)");
  if (virtualBatchSize !== null) throw new TypeError("statistics: not with virtualBatchSize (each ghost batch has its own statistics)");
  const s = checkPart("statistics", v, c);
  if (s.count < 2) throw new RangeError(`statistics.count: expected more than 1 value per channel when training, got ${s.count}`);
  return { count: s.count, mean: s.mean, variance: s.m2.map((m) => m / s.count) };
}

export function batchNormBackward(engine: Engine, dy: Tensor, x: Tensor, options: BatchNormBackwardOptions): BatchNormBackwardResult {
  return engine.run("batchNormBackward", batchNormBackwardSteps(engine, dy, x, options));
}

/** batchNormBackward on the worker pool: resolves with the same result, never blocking the caller. */
export function batchNormBackwardAsync(engine: Engine, dy: Tensor, x: Tensor, options: BatchNormBackwardOptions): Promise<BatchNormBackwardResult> {
  return engine.runAsync(() => batchNormBackwardSteps(engine, dy, x, options));
}

/** The checks a backward call starts with: its option names, dy and x, the shape, dy of x's length. */
function checkGradientInputs(
  memory: WasmMemory, dy: Tensor, x: Tensor, options: { shape: readonly number[]; layout?: Layout }, known: ReadonlySet<string>,
): { dyOp: Operand; xOp: Operand; g: Geometry } {
  checkKeys(options, known);
  const dyOp = checkTensor("dy", dy, memory);
  const xOp = checkTensor("x", x, memory);
  const g = geometry(options.shape, checkLayout(options.layout), x.length);
  if (dy.length !== x.length) throw new RangeError(`dy: expected length ${x.length} (as x), got ${dy.length}`);
  return { dyOp, xOp, g };
}

function* batchNormBackwardSteps(engine: Engine, dy: Tensor, x: Tensor, options: BatchNormBackwardOptions): Steps<BatchNormBackwardResult> {
  const memory = engine.memory;
  const { dyOp, xOp, g } = checkGradientInputs(memory, dy, x, options, BACKWARD_OPTIONS);
  const length = x.length;
  const weight = checkChannels("weight", options.weight, g.c, memory);
  const training = checkBoolean("training", options.training, true);
  const eps = checkEps(options.eps);
  const relu = checkActivation(options.activation) === "relu";
  const bias = checkChannels("bias", options.bias, g.c, memory);
  const virtualBatchSize = checkVirtualBatchSize(options.virtualBatchSize);
  const out = checkOut("out", options.out, length, memory);
  // the forward's statistics: its batch mean and invstd per ghost batch (training), or the running ones
  const chunks = chunksOf(g, training ? virtualBatchSize : null);
  const rows = chunks.length * g.c;
  const [meanName, spreadName] = training ? ["mean", "invstd"] as const : ["runningMean", "runningVar"] as const;
  const mean = checkChunkChannels(meanName, options[meanName], g.c, chunks.length, virtualBatchSize, memory);
  const spread = checkChunkChannels(spreadName, options[spreadName], g.c, chunks.length, virtualBatchSize, memory);
  if (!mean || !spread) {
    const missing = mean ? spreadName : meanName;
    const hint = training ? "with training: true (pass the mean and invstd batchNorm returned)" : "with training: false";
    throw new TypeError(`${missing}: required ${hint}, got ${describe(options[missing])}`);
  }
  if (out !== null) {
    checkDisjoint(out, length, "dy", dyOp, length, true);
    checkDisjoint(out, length, "x", xOp, length, true);
    checkDisjoint(out, length, "weight", weight, g.c, false);
    checkDisjoint(out, length, "bias", bias, g.c, false);
    checkDisjoint(out, length, meanName, mean, rows, false);
    checkDisjoint(out, length, spreadName, spread, rows, false);
  }

  const reduced = checkReduced(options.reduced, options.count, g.c, training, virtualBatchSize);
  const mean64 = new Float64Array(memory.floats(mean, rows));
  let invstd64: Float64Array;
  if (training) {
    invstd64 = batchInvstd(memory, options.invstd, spread, rows);
    addLow(mean64, options.mean);
  } else {
    invstd64 = Float64Array.from(memory.floats(spread, g.c), (v) => 1 / Math.sqrt(v + eps));
  }
  if (reduced) {
    // the whole batch's gradients on every rank, an empty one too
    const dx = out ?? new Float32Array(length);
    const o = { weight, mean: mean64, invstd: invstd64, training, relu: relu ? { weight, bias } : null, reduced };
    const grads = length ? yield* engine.backward(dyOp, xOp, dx, g, engine.scratch(g.c), o) : {
      dweight: reduced.sumDyXc.map((s, i) => s * invstd64[i]), dbias: reduced.sumDy,
    };
    return { dx: out !== null ? resultOf(memory, options.out!, out, length) : (dx as Float32Array), dweight: new Float32Array(grads.dweight), dbias: new Float32Array(grads.dbias) };
  }
  if (length === 0) {
    const dx = out !== null ? resultOf(memory, options.out!, out, 0) : new Float32Array(0);
    return { dx, dweight: new Float32Array(g.c), dbias: new Float32Array(g.c) };
  }
  const sc = engine.scratch(g.c);
  const dx = out ?? new Float32Array(length);
  const grads = yield* backwardChunks(engine, dyOp, xOp, dx, chunks, sc, weight, mean64, invstd64, training, null, relu ? { weight, bias } : null);
  return {
    dx: out !== null ? resultOf(memory, options.out!, out, length) : (dx as Float32Array),
    dweight: new Float32Array(grads.dweight),
    dbias: new Float32Array(grads.dbias),
  };
}

/** The `reduced` and `count` options checked: null, or the summed reductions for a training backward without ghost batches. */
function checkReduced(v: unknown, count: unknown, c: number, training: boolean, virtualBatchSize: number | null): (Reduced & { count: number }) | null {
  if (v === undefined || v === null) {
    if (count !== undefined) throw new TypeError("count: only with reduced");
    return null;
  }
  if (!training) throw new TypeError("reduced: only with training: true (eval-mode backward needs no sums)");
  if (virtualBatchSize !== null) throw new TypeError("reduced: not with virtualBatchSize");
  if (count === undefined) throw new TypeError("count: required with reduced (the count of the merged statistics the forward used)");
  if (!Number.isSafeInteger(count) || (count as number) < 1) throw new RangeError(`count: expected a positive integer, got ${describe(count)}`);
  checkKeys(v, REDUCED_KEYS, "reduced", "reduced.", "field");
  const r = v as { sumDy: unknown; sumDyXc: unknown };
  return { sumDy: f64Row("reduced.sumDy", r.sumDy, c), sumDyXc: f64Row("reduced.sumDyXc", r.sumDyXc, c), count: count as number };
}

const REDUCE_OPTIONS: ReadonlySet<string> = new Set(["shape", "layout", "mean", "invstd", "weight", "bias", "activation"]);
const REDUCED_KEYS: ReadonlySet<string> = new Set(["sumDy", "sumDyXc"]);

export function batchNormBackwardReduce(engine: Engine, dy: Tensor, x: Tensor, options: BatchNormBackwardReduceOptions): BatchNormBackwardReduced {
  return engine.run("batchNormBackwardReduce", batchNormBackwardReduceSteps(engine, dy, x, options));
}

/** batchNormBackwardReduce on the worker pool. */
export function batchNormBackwardReduceAsync(engine: Engine, dy: Tensor, x: Tensor, options: BatchNormBackwardReduceOptions): Promise<BatchNormBackwardReduced> {
  return engine.runAsync(() => batchNormBackwardReduceSteps(engine, dy, x, options));
}

function* batchNormBackwardReduceSteps(engine: Engine, dy: Tensor, x: Tensor, options: BatchNormBackwardReduceOptions): Steps<BatchNormBackwardReduced> {
  const memory = engine.memory;
  const { dyOp, xOp, g } = checkGradientInputs(memory, dy, x, options, REDUCE_OPTIONS);
  const mean = checkChannels("mean", options.mean, g.c, memory);
  const invstd = checkChannels("invstd", options.invstd, g.c, memory);
  if (!mean || !invstd) {
    const missing = mean ? "invstd" : "mean";
    throw new TypeError(`${missing}: required (pass the ${missing} batchNorm returned), got ${describe(options[missing])}`);
  }
  const relu = checkActivation(options.activation) === "relu";
  const weight = checkChannels("weight", options.weight, g.c, memory);
  const bias = checkChannels("bias", options.bias, g.c, memory);
  if (x.length === 0) return { sumDy: new Float64Array(g.c), sumDyXc: new Float64Array(g.c) };
  const mean64 = new Float64Array(memory.floats(mean, g.c));
  addLow(mean64, options.mean);
  const o = { mean: mean64, invstd: batchInvstd(memory, options.invstd, invstd, g.c), relu: relu ? { weight, bias } : null };
  return yield* engine.backwardReduce(dyOp, xOp, g, engine.scratch(g.c), o);
}
