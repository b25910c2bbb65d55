// The functional API: batchNorm (forward, training or inference) and batchNormBackward, with
// PyTorch's semantics (torch.nn.functional.batch_norm and its autograd):
//   y = (x - mean) / sqrt(var + eps) * weight + bias, per channel,
// mean/var from the batch (biased variance) when training or when no running statistics are given,
// else from runningMean/runningVar; training updates running = (1 - momentum) * running +
// momentum * batch, with the unbiased batch variance. See: Ioffe & Szegedy, "Batch Normalization", 2015.
import type { Backend } from "./index.js";
import { Engine, Operand, Running, Steps } from "./engine.js";
import { backwardChunks, chunksOf, concat, forwardChunks } from "./ghost.js";
import { WasmMemory, WasmTensor } from "./memory.js";
import {
  Layout, Tensor, checkBoolean, checkChannels, checkChunkChannels, checkChunkStats, checkDisjoint, checkEps, checkKeys, checkLayout,
  checkMomentum, checkOut, checkRunningVariance, checkTensor, checkVirtualBatchSize, describe, geometry, RunningVariance,
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
  /** Destination for dx; may be dy or x itself, and must not otherwise share memory with any argument. Default a new Float32Array. */
  out?: Tensor | null;
  /**
   * The forward's `virtualBatchSize`: with `training: true`, backward runs per ghost batch and
   * `mean` and `invstd` hold the forward's C values per chunk. Ignored with `training: false`. Default `null`.
   */
  virtualBatchSize?: number | null;
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

const FORWARD_OPTIONS: ReadonlySet<string> = new Set([
  "shape", "layout", "weight", "bias", "runningMean", "runningVar", "training", "momentum", "runningVariance", "eps", "out", "virtualBatchSize",
]);
const BACKWARD_OPTIONS: ReadonlySet<string> = new Set([
  "shape", "layout", "weight", "eps", "training", "mean", "invstd", "runningMean", "runningVar", "out", "virtualBatchSize",
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
  if (batchStats) checkChunkStats(chunks);

  if (length === 0) {
    const y = out !== null ? resultOf(memory, options.out!, out, 0) : new Float32Array(0);
    return { y, mean: new Float32Array(chunks.length * g.c).fill(NaN), invstd: new Float32Array(chunks.length * g.c).fill(NaN) };
  }
  const sc = engine.scratch(g.c);
  const y = out ?? new Float32Array(length);
  const factor = training && running ? momentum : null;
  const stats = yield* forwardChunks(engine, xOp, y, chunks, sc, weight, bias, eps, batchStats, running, () => ({ factor, reweight: null }));
  const mean64 = concat(stats.map((s) => s.mean));
  const mean = new Float32Array(mean64);
  // the low part matters only to a backward through batch statistics
  if (batchStats) Object.defineProperty(mean, LOW, { value: Array.from(mean64, (m, i) => m - mean[i]) });
  const invstd = new Float32Array(concat(stats.map((s) => s.invstd)));
  return { y: out !== null ? resultOf(memory, options.out!, out, length) : (y as Float32Array), mean, invstd };
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
  checkKeys(options, BACKWARD_OPTIONS);
  const dyOp = checkTensor("dy", dy, memory);
  const xOp = checkTensor("x", x, memory);
  const length = x.length;
  const g = geometry(options.shape, checkLayout(options.layout), length);
  if (dy.length !== length) throw new RangeError(`dy: expected length ${length} (as x), got ${dy.length}`);
  const weight = checkChannels("weight", options.weight, g.c, memory);
  const training = checkBoolean("training", options.training, true);
  const eps = checkEps(options.eps);
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
    checkDisjoint(out, length, meanName, mean, rows, false);
    checkDisjoint(out, length, spreadName, spread, rows, false);
  }

  if (length === 0) {
    const dx = out !== null ? resultOf(memory, options.out!, out, 0) : new Float32Array(0);
    return { dx, dweight: new Float32Array(g.c), dbias: new Float32Array(g.c) };
  }
  const mean64 = new Float64Array(memory.floats(mean, rows));
  let invstd64: Float64Array;
  if (training) {
    invstd64 = new Float64Array(memory.floats(spread, rows));
    const low = options.mean instanceof Float32Array ? (options.mean as { [LOW]?: number[] })[LOW] : undefined;
    if (low) for (let i = 0; i < low.length; i++) mean64[i] += low[i];
  } else {
    invstd64 = Float64Array.from(memory.floats(spread, g.c), (v) => 1 / Math.sqrt(v + eps));
  }
  const sc = engine.scratch(g.c);
  const dx = out ?? new Float32Array(length);
  const grads = yield* backwardChunks(engine, dyOp, xOp, dx, chunks, sc, weight, mean64, invstd64, training, null);
  return {
    dx: out !== null ? resultOf(memory, options.out!, out, length) : (dx as Float32Array),
    dweight: new Float32Array(grads.dweight),
    dbias: new Float32Array(grads.dbias),
  };
}
