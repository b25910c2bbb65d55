// wasm-batchnorm: batch normalization with PyTorch's semantics, computed by AssemblyScript kernels
// compiled to WebAssembly (128-bit SIMD where the engine has it, scalar otherwise).
//
//   const bn = await init();
//   const { y, mean, invstd } = bn.batchNorm(x, { shape: [N, C, H, W], weight, bias, runningMean, runningVar });
//
// init() loads the embedded wasm once per backend; everything else is synchronous.
/**
 * `wasm-batchnorm`: the library ({@link init}); the TensorFlow.js kernel plugin is the `wasm-batchnorm/tfjs` subpath.
 * @packageDocumentation
 * @mergeModuleWith <project>
 */
import {
  batchNorm, batchNormAsync, batchNormBackward, batchNormBackwardAsync, batchNormBackwardReduce, batchNormBackwardReduceAsync,
  BatchNormOptions, BatchNormResult, BatchNormBackwardOptions, BatchNormBackwardResult,
} from "./batchnorm.js";
import {
  BatchNormBackwardReduced, BatchNormBackwardReduceOptions, BatchStatistics, BatchStatisticsInput, BatchStatisticsOptions,
  batchStatisticsSteps, mergeStatistics,
} from "./split-phase.js";
import { SyncBatchNorm as SyncBatchNormModule, SyncBatchNormOptions } from "./sync-batchnorm.js";
import { fromKeras, fromOnnx, KerasBatchNormalization, OnnxBatchNormalization } from "./conventions.js";
import { Engine } from "./engine.js";
import { Executor } from "./executor.js";
import { FoldBatchNormParams, FoldLayer, FoldResult, foldBatchNorm } from "./fold.js";
import { BackendName, instantiate, simdSupported } from "./kernels.js";
import { Pool, threadsAvailable } from "./pool.js";
import { WasmTensor } from "./memory.js";
import { BatchNorm as BatchNormModule, BatchNormJSON, BatchNormModuleOptions } from "./module.js";
import { RunningStats as RunningStatsBase, RunningStatsJSON } from "./running-stats.js";
import { checkKeys, describe } from "./validate.js";

export type { BatchNormOptions, BatchNormResult, BatchNormBackwardOptions, BatchNormBackwardResult } from "./batchnorm.js";
export type { BatchNormModuleOptions, BatchNormStateDict, BatchNormStateDictInput, BatchNormJSON, FloatList } from "./module.js";
export type { JsonFloat } from "./json.js";
export type {
  KerasBatchNormalization, KerasBatchNormalizationOutput, OnnxBatchNormalization, OnnxBatchNormalizationOutput,
} from "./conventions.js";
export type { RunningStatsJSON, RunningStatsUpdateOptions, VarianceOptions } from "./running-stats.js";
export type { Activation, BatchRenormOptions, Layout, RunningVariance, Tensor } from "./validate.js";
export type { BackendName } from "./kernels.js";
export type { FoldBatchNormParams, FoldLayer, FoldResult, FoldValues } from "./fold.js";
export { WasmTensor } from "./memory.js";
export type { BatchNorm } from "./module.js";
export type { SyncBatchNorm, SyncBatchNormOptions, SyncPart } from "./sync-batchnorm.js";
export type {
  BatchStatistics, BatchStatisticsInput, BatchStatisticsOptions, BatchNormBackwardReduceOptions, BatchNormBackwardReduced,
} from "./split-phase.js";
export type { RunningStats } from "./running-stats.js";

/** Options of {@link init}. */
export interface InitOptions {
  /**
   * The kernel build: `'simd'` (128-bit WebAssembly SIMD) or `'scalar'`. Default: `'simd'` where
   * the engine validates the SIMD build, else `'scalar'`.
   */
  backend?: BackendName;
  /**
   * Threads for each call: a whole number >= 1, or `'auto'` (the default): the cores available, at
   * most {@link AUTO_THREADS_CAP}. More than 1 needs shared memory (Node; in browsers a
   * cross-origin-isolated page); elsewhere the backend runs 1 thread and says so once in the console.
   */
  threads?: number | "auto";
}

/**
 * The most threads `'auto'` picks. Batch normalization streams memory: a few cores saturate a socket's
 * bandwidth, and more threads then only add wake-up cost (see the README's threads section).
 */
export const AUTO_THREADS_CAP = 4;

/** Cores this environment reports (navigator.hardwareConcurrency, or Node's os.availableParallelism()). */
function cores(): number {
  const g = globalThis as { navigator?: { hardwareConcurrency?: number }; process?: { getBuiltinModule?(id: string): unknown } };
  const os = g.process?.getBuiltinModule?.("node:os") as { availableParallelism?(): number } | undefined;
  return Math.max(1, os?.availableParallelism?.() ?? g.navigator?.hardwareConcurrency ?? 1);
}

let warnedNoThreads = false;

/**
 * A loaded backend (from {@link init}): the functional API, the module and RunningStats, bound to
 * one wasm memory. Calls are synchronous; the `...Async` ones run on worker threads.
 *
 * @example
 * const bn = await init();
 * const { y, mean, invstd } = bn.batchNorm(x, { shape: [N, C, H, W], weight, bias });
 * const { dx, dweight, dbias } = bn.batchNormBackward(dy, x, { shape: [N, C, H, W], weight, mean, invstd });
 */
export class Backend {
  /** Which kernel build runs: `'simd'` or `'scalar'`. */
  readonly backend: BackendName;
  /**
   * The module, like `torch.nn.BatchNorm1d/2d/3d`: `new bn.BatchNorm(numFeatures, options)`
   * (numFeatures 1 to 2^24, options in {@link BatchNormModuleOptions}; a RangeError or TypeError
   * naming the argument or option otherwise), and `bn.BatchNorm.fromJSON(json)` for what
   * `JSON.stringify(layer)` wrote (an object or the JSON text; a TypeError, RangeError or
   * SyntaxError naming the field for anything else).
   *
   * `bn.BatchNorm.fromKeras({ config, weights })` reads a Keras / TensorFlow.js BatchNormalization
   * layer ({@link KerasBatchNormalization}) and `bn.BatchNorm.fromOnnx(node)` an ONNX
   * BatchNormalization node ({@link OnnxBatchNormalization}): the module trains with that
   * framework's rule (`momentum` = 1 - its keep factor, `runningVariance: 'biased'`, its eps and
   * layout; an ONNX node with `training_mode: 1` starts in training mode, else eval mode; a Keras layer
   * in training mode) and `layer.toKeras()` / `layer.toOnnx()` write it back unchanged. Errors name
   * the config key, attribute or weight.
   * @example
   * const layer = new bn.BatchNorm(64, { momentum: 0.1 });
   * const copy = bn.BatchNorm.fromJSON(JSON.stringify(layer));
   * const fromTfjs = bn.BatchNorm.fromKeras({ config: tfLayer.getConfig(), weights }); // weights by name
   */
  readonly BatchNorm: {
    new (numFeatures: number, options?: BatchNormModuleOptions): BatchNormModule;
    fromJSON(json: BatchNormJSON | string): BatchNormModule;
    fromKeras(layer: KerasBatchNormalization): BatchNormModule;
    fromOnnx(node: OnnxBatchNormalization): BatchNormModule;
  };
  /**
   * Exact population statistics over many batches: `new bn.RunningStats(numFeatures)` (1 to 2^24,
   * a RangeError otherwise), and `bn.RunningStats.fromJSON(json)` for what `JSON.stringify(stats)`
   * wrote (an object or the JSON text; states no accumulator can hold are a TypeError or RangeError
   * naming the field).
   * @example
   * const stats = new bn.RunningStats(3).update(x, { shape: [8, 3, 32, 32] });
   * const restored = bn.RunningStats.fromJSON(JSON.stringify(stats));
   */
  readonly RunningStats: {
    new (numFeatures: number): RunningStatsBase;
    fromJSON(json: RunningStatsJSON | string): RunningStatsBase;
  };
  /**
   * BatchNorm across processes or machines, like `torch.nn.SyncBatchNorm`:
   * `new bn.SyncBatchNorm(numFeatures, { ...moduleOptions, allgather })` (see
   * {@link SyncBatchNormOptions}; the README shows a 3-process example).
   * @example
   * const layer = new bn.SyncBatchNorm(64, { allgather: (part) => transport.allgather(part) });
   * const y = await layer.forwardAsync(shard, shape);
   */
  readonly SyncBatchNorm: new (numFeatures: number, options: SyncBatchNormOptions) => SyncBatchNormModule;
  private readonly engine: Engine;

  /** Threads a sync call uses (1 where shared memory is not available, see InitOptions.threads). */
  get threads(): number {
    return this.engine.threads;
  }

  /**
   * Ends this backend's worker threads (if any). The backend cannot run calls afterwards; init()
   * with the same options loads a new one.
   */
  async terminate(): Promise<void> {
    for (const [key, p] of loaded) if ((await p.catch(() => null)) === this) loaded.delete(key);
    await this.engine.executor.pool?.terminate();
  }

  /** @internal use init() */
  constructor(engine: Engine) {
    this.engine = engine;
    this.backend = engine.name;
    const Stats = (this.RunningStats = class extends RunningStatsBase {
      constructor(numFeatures: number) {
        super(engine, numFeatures);
      }
      static fromJSON(json: RunningStatsJSON | string): RunningStatsBase {
        const j = RunningStatsBase.validateJSON(json);
        return new this(j.numFeatures).load(j);
      }
    });
    this.BatchNorm = class extends BatchNormModule {
      constructor(numFeatures: number, options?: BatchNormModuleOptions) {
        super(engine, numFeatures, options);
      }
      static fromJSON(json: BatchNormJSON | string): BatchNormModule {
        const j = BatchNormModule.parseJSON(json);
        return new this(j.numFeatures, j.options).restore(j);
      }
      static fromKeras(layer: KerasBatchNormalization): BatchNormModule {
        const j = fromKeras(layer);
        return new this(j.numFeatures, j.options).adopt(j);
      }
      static fromOnnx(node: OnnxBatchNormalization): BatchNormModule {
        const j = fromOnnx(node);
        return new this(j.numFeatures, j.options).adopt(j);
      }
      protected newRunningStats(): RunningStatsBase {
        return new Stats(this.numFeatures);
      }
    };
    this.SyncBatchNorm = class extends SyncBatchNormModule {
      constructor(numFeatures: number, options: SyncBatchNormOptions) {
        super(engine, numFeatures, options);
      }
      protected newRunningStats(): RunningStatsBase {
        return new Stats(this.numFeatures);
      }
    };
  }

  /**
   * Batch normalization forward, as `torch.nn.functional.batch_norm`:
   * `y = (x - mean) / sqrt(var + eps) * weight + bias` per channel, with the batch's statistics
   * (training, the default; running statistics given are then updated in place) or the running ones;
   * with `activation: 'relu'`, `y = max(0, y)` in the same pass (`torch.relu(F.batch_norm(...))`).
   * @param x input: a Float32Array (staged through wasm memory in 1 MiB chunks), a WasmTensor of this
   *   backend, or a Float32Array view inside one (both zero-copy).
   * @param options shape (required) and the rest; see {@link BatchNormOptions}.
   * @returns `y` (`out`'s data when given), and the per-channel `mean` and `invstd` it normalized with,
   *   each in an ArrayBuffer of its own (NaN for an empty batch).
   * @throws {TypeError|RangeError} naming the argument (wrong type or length, unknown option, shape
   *   not matching x, `out` partly overlapping x or overlapping another argument, a detached or freed
   *   view, more than 2^24 channels, one value per channel when training); nothing changes then.
   * @example
   * const runningMean = new Float32Array(3), runningVar = new Float32Array(3).fill(1);
   * const { y } = bn.batchNorm(x, { shape: [8, 3, 32, 32], runningMean, runningVar }); // updates both
   * const inferred = bn.batchNorm(x, { shape: [8, 3, 32, 32], runningMean, runningVar, training: false });
   * const fused = bn.batchNorm(x, { shape: [8, 3, 32, 32], weight, bias, activation: "relu" }); // max(0, BN(x))
   */
  batchNorm(x: Float32Array | WasmTensor, options: BatchNormOptions): BatchNormResult {
    return batchNorm(this.engine, x, options);
  }

  /**
   * Gradients of `sum(y * dy)` for x, weight and bias, as PyTorch's autograd of batch_norm. With
   * `training: true` (the default) pass the forward's `mean` and `invstd`, and the gradient flows
   * through the batch statistics; with `training: false` pass the running statistics (constants).
   * Through a fused ReLU pass `activation: 'relu'` and the forward's weight and bias as well.
   * @param dy gradient for y, the length of x; `out: dy` computes dx in place.
   * @param x the forward's input.
   * @returns `dx` (`out`'s data when given), `dweight` and `dbias` (per channel; `dweight` also
   *   without a weight: that of an implicit weight of 1).
   * @throws {TypeError|RangeError} naming the argument, as batchNorm; also a missing `mean`/`invstd`
   *   (training) or `runningMean`/`runningVar` (eval); nothing changes then.
   * @example
   * const { mean, invstd } = bn.batchNorm(x, { shape, weight });
   * const { dx, dweight, dbias } = bn.batchNormBackward(dy, x, { shape, weight, mean, invstd });
   * const r = bn.batchNorm(x, { shape, weight, bias, activation: "relu" });
   * const g = bn.batchNormBackward(dy, x, { shape, weight, bias, mean: r.mean, invstd: r.invstd, activation: "relu" });
   */
  batchNormBackward(dy: Float32Array | WasmTensor, x: Float32Array | WasmTensor, options: BatchNormBackwardOptions): BatchNormBackwardResult {
    return batchNormBackward(this.engine, dy, x, options);
  }

  /**
   * batchNorm without blocking the caller: the work runs on this backend's worker threads (on the
   * calling thread where there are none, see `threads`). Calls on one backend run one at a time in
   * the order made; a sync call while one is pending throws. Leave the inputs unchanged until it resolves.
   * It rejects where batchNorm throws.
   * @example
   * const { y, mean, invstd } = await bn.batchNormAsync(x, { shape: [8, 3, 32, 32] });
   */
  batchNormAsync(x: Float32Array | WasmTensor, options: BatchNormOptions): Promise<BatchNormResult> {
    return batchNormAsync(this.engine, x, options);
  }

  /**
   * batchNormBackward without blocking the caller (as batchNormAsync).
   * @example
   * const { dx } = await bn.batchNormBackwardAsync(dy, x, { shape: [8, 3, 32, 32], mean, invstd });
   */
  batchNormBackwardAsync(dy: Float32Array | WasmTensor, x: Float32Array | WasmTensor, options: BatchNormBackwardOptions): Promise<BatchNormBackwardResult> {
    return batchNormBackwardAsync(this.engine, dy, x, options);
  }

  /**
   * SyncBN, phase 1: the exact mergeable statistics of this rank's shard, per channel in float64
   * (count, mean, M2). Send them to every rank, merge with {@link mergeStatistics}, normalize with
   * `batchNorm(x, { ..., statistics })`.
   * @param x this rank's shard (may be empty: count 0).
   * @param options `shape` (required) and `layout`, as batchNorm's.
   * @throws {TypeError|RangeError} naming the argument, as batchNorm.
   * @example
   * const part = bn.batchStatistics(shard, { shape: [8, 64, 28, 28] }); // { count, mean, m2 }
   */
  batchStatistics(x: Float32Array | WasmTensor, options: BatchStatisticsOptions): BatchStatistics {
    return this.engine.run("batchStatistics", batchStatisticsSteps(this.engine, x, options));
  }

  /** batchStatistics on the worker pool, never blocking the caller. */
  batchStatisticsAsync(x: Float32Array | WasmTensor, options: BatchStatisticsOptions): Promise<BatchStatistics> {
    return this.engine.runAsync(() => batchStatisticsSteps(this.engine, x, options));
  }

  /**
   * SyncBN, phase 2: every rank's statistics merged by Chan et al.'s formula in the given order
   * (empty parts add nothing), so every rank that merges the same parts in the same order gets the
   * same bits. Parts may come through JSON (arrays of numbers).
   * @param parts one `{ count, mean, m2 }` per rank, at least one, all with the same channel count.
   * @returns the merged `{ count, mean, m2 }` (float64).
   * @throws {TypeError|RangeError} naming the part and field (`parts[2].mean: expected length 64, ...`).
   * @example
   * const merged = bn.mergeStatistics(await allgather(part));
   * const { y } = bn.batchNorm(shard, { shape, runningMean, runningVar, statistics: merged });
   */
  mergeStatistics(parts: readonly BatchStatisticsInput[]): BatchStatistics {
    return mergeStatistics(parts);
  }

  /**
   * SyncBN, backward phase 1: this rank's per-channel sums of dy and dy * (x - mean) (float64), for
   * the forward that returned `mean` and `invstd`. Add them over all ranks and pass the sums to
   * `batchNormBackward(dy, x, { ..., reduced, count })` with the merged count.
   * @throws {TypeError|RangeError} naming the argument, as batchNormBackward.
   * @example
   * const local = bn.batchNormBackwardReduce(dy, shard, { shape, mean, invstd });
   * const { dx } = bn.batchNormBackward(dy, shard, { shape, mean, invstd, reduced: sumOverRanks(local), count: merged.count });
   */
  batchNormBackwardReduce(dy: Float32Array | WasmTensor, x: Float32Array | WasmTensor, options: BatchNormBackwardReduceOptions): BatchNormBackwardReduced {
    return batchNormBackwardReduce(this.engine, dy, x, options);
  }

  /** batchNormBackwardReduce on the worker pool, never blocking the caller. */
  batchNormBackwardReduceAsync(
    dy: Float32Array | WasmTensor, x: Float32Array | WasmTensor, options: BatchNormBackwardReduceOptions,
  ): Promise<BatchNormBackwardReduced> {
    return batchNormBackwardReduceAsync(this.engine, dy, x, options);
  }

  /**
   * Folds an inference-mode BatchNorm into the Linear or Conv before it, as PyTorch's
   * `fuse_conv_bn_weights` / `fuse_linear_bn_weights`: per output channel `s = bn_weight /
   * sqrt(running_var + eps)`, `W' = W * s` and `b' = (b - running_mean) * s + bn_bias`. Computed in
   * float64 and rounded once to float32 (more exact than PyTorch's float32 arithmetic).
   * @param conv `{ weight, shape, bias?, transposed? }` ({@link FoldLayer}): bias default zeros;
   *   `transposed` (default false) reads ConvTranspose weights `[in, out, ...]`, channels on axis 1.
   * @param layer A `bn.BatchNorm` with running statistics (and its eps, in either mode), or
   *   `{ running_mean, running_var, weight?, bias?, eps? }` ({@link FoldBatchNormParams}): weight
   *   default ones, bias zeros, eps 1e-5.
   * @returns New arrays: the weight in the input's shape, one bias per output channel. The inputs are unchanged.
   * @throws TypeError or RangeError naming the argument: wrong types or unknown keys, a shape that does
   *   not hold the weight, an output-channel axis that is not the BN's channel count, arrays of another
   *   length, no running statistics, eps not a finite number > 0.
   * @example
   * const { weight, bias } = bn.foldBatchNorm({ weight: W, shape: [out, inp, 3, 3], bias: b }, layer);
   */
  foldBatchNorm(conv: FoldLayer, layer: BatchNormModule | FoldBatchNormParams): FoldResult {
    return foldBatchNorm(this.engine.memory, conv, layer);
  }

  /**
   * A zero-filled tensor of `length` floats in this backend's wasm memory: passing it (or views of
   * its `data`) to the API avoids every tensor-sized copy. `free()` it when done; one dropped
   * without `free()` is reclaimed when garbage-collected.
   * @param length floats, 0 to 2^30.
   * @throws {RangeError} for a length that is not a non-negative integer, or that wasm32 memory (4 GiB) cannot hold.
   * @example
   * const x = bn.alloc(8 * 3 * 32 * 32);
   * x.data.set(pixels);
   * bn.batchNorm(x, { shape: [8, 3, 32, 32], out: x }); // in place, no copies
   * x.free();
   */
  alloc(length: number): WasmTensor {
    if (!Number.isSafeInteger(length) || length < 0) {
      throw new RangeError(`length: expected a non-negative integer, got ${describe(length)}`);
    }
    if (length > 2 ** 30) throw new RangeError(`length: ${length} floats do not fit in wasm32 memory (4 GiB)`);
    const t = new WasmTensor(this.engine.memory, length);
    t.data.fill(0);
    return t;
  }

  /** Bytes of wasm linear memory (starts at 16 MiB, at least doubles when it grows, never shrinks). */
  get memoryBytes(): number {
    return this.engine.memory.buffer.byteLength;
  }

  /**
   * The state of wasm memory, to check zero-copy use and leaks: `bytes` of linear memory, bytes
   * `inUse` by live blocks, `allocations` made so far (a zero-copy call makes none), and the
   * `largestFree` block (the most one allocation can take before memory grows, which detaches views).
   */
  memoryStats(): { bytes: number; inUse: number; allocations: number; largestFree: number } {
    const m = this.engine.memory;
    return { bytes: m.buffer.byteLength, inUse: m.bytesInUse, allocations: m.allocations, largestFree: m.largestFree };
  }
}

const loaded = new Map<string, Promise<Backend>>();
const INIT_OPTIONS: ReadonlySet<string> = new Set(["backend", "threads"]);

/**
 * Instantiates a build. Where shared memory and workers are available, that is the threaded build on
 * a shared memory with a pool of `threads` workers: sync calls use the caller and threads - 1 of them,
 * async calls run on the workers (so even 1 thread never blocks the caller). Elsewhere the plain build,
 * 1 thread, and async calls run on the calling thread.
 */
async function load(name: BackendName, threads: number): Promise<Backend> {
  const threaded = threadsAvailable();
  if (threads > 1 && !threaded) {
    if (!warnedNoThreads) {
      warnedNoThreads = true;
      console.warn(
        "wasm-batchnorm: threads need SharedArrayBuffer; this page is not cross-origin isolated (serve it with " +
          "'Cross-Origin-Opener-Policy: same-origin' and 'Cross-Origin-Embedder-Policy: require-corp'), so 1 thread is used",
      );
    }
    threads = 1;
  }
  const { module, kernels, memory } = await instantiate(name, threaded);
  const pool = threaded ? await Pool.start(module, memory.memory, threads) : null;
  return new Backend(new Engine(name, kernels, memory, new Executor(kernels, module, pool, threads)));
}

/**
 * Loads a backend: compiles the embedded wasm once per build and thread count; concurrent and
 * repeated calls share one load (and one wasm memory). `init({ threads: 1 })` and
 * `init({ threads: 2 })` are two independent backends.
 * @param options `backend` to force a build, `threads`; see {@link InitOptions}.
 * @returns a promise of the {@link Backend}; it rejects with a TypeError or RangeError for a bad or
 *   unknown option, or an Error when `'simd'` is forced on an engine without WebAssembly SIMD.
 * @example
 * import { init } from "wasm-batchnorm";
 * const bn = await init();               // SIMD where supported, threads 'auto'
 * const scalar = await init({ backend: "scalar", threads: 1 });
 */
export function init(options: InitOptions = {}): Promise<Backend> {
  try {
    checkKeys(options, INIT_OPTIONS);
  } catch (e) {
    return Promise.reject(e);
  }
  const requested = options.backend;
  if (requested !== undefined && requested !== "simd" && requested !== "scalar") {
    return Promise.reject(new TypeError(`backend: expected 'simd' or 'scalar', got ${describe(requested)}`));
  }
  const t = options.threads ?? "auto";
  if (t !== "auto" && !(Number.isSafeInteger(t) && t >= 1 && t <= 256)) {
    return Promise.reject(new RangeError(`threads: expected a whole number from 1 to 256 or 'auto', got ${describe(t)}`));
  }
  const threads = t === "auto" ? Math.min(cores(), AUTO_THREADS_CAP) : t;
  const name: BackendName = requested ?? (simdSupported() ? "simd" : "scalar");
  const key = `${name}/${threads}`;
  let p = loaded.get(key);
  if (!p) {
    if (name === "simd" && !simdSupported()) {
      return Promise.reject(new Error("backend: this engine does not support WebAssembly SIMD; use 'scalar'"));
    }
    p = load(name, threads);
    p.catch(() => loaded.delete(key));
    loaded.set(key, p);
  }
  return p;
}
