// wasm-batchnorm: batch normalization with PyTorch's semantics, computed by AssemblyScript kernels
// compiled to WebAssembly (128-bit SIMD where the engine has it, scalar otherwise).
//
//   const bn = await init();
//   const { y, mean, invstd } = bn.batchNorm(x, { shape: [N, C, H, W], weight, bias, runningMean, runningVar });
//
// init() loads the embedded wasm once per backend; everything else is synchronous.
import {
  batchNorm, batchNormAsync, batchNormBackward, batchNormBackwardAsync, BatchNormOptions, BatchNormResult, BatchNormBackwardOptions,
  BatchNormBackwardResult,
} from "./batchnorm.js";
import { Engine } from "./engine.js";
import { Executor } from "./executor.js";
import { FoldBatchNormParams, FoldLayer, FoldResult, foldBatchNorm } from "./fold.js";
import { BackendName, instantiate, simdSupported } from "./kernels.js";
import { Pool, threadsAvailable } from "./pool.js";
import { WasmTensor } from "./memory.js";
import { BatchNorm as BatchNormModule, BatchNormModuleOptions } from "./module.js";
import { RunningStats as RunningStatsBase, RunningStatsJSON } from "./running-stats.js";
import { describe } from "./validate.js";

export type { BatchNormOptions, BatchNormResult, BatchNormBackwardOptions, BatchNormBackwardResult } from "./batchnorm.js";
export type { BatchNormModuleOptions, BatchNormStateDict } from "./module.js";
export type { RunningStatsJSON } from "./running-stats.js";
export type { Layout, Tensor } from "./validate.js";
export type { BackendName } from "./kernels.js";
export type { FoldBatchNormParams, FoldLayer, FoldResult, FoldValues } from "./fold.js";
export { WasmTensor } from "./memory.js";
export type { BatchNorm } from "./module.js";
export type { RunningStats } from "./running-stats.js";

export interface InitOptions {
  /** Force a build; by default SIMD where WebAssembly.validate accepts it, else scalar. */
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

/** A loaded backend: the functional API, the module and RunningStats, bound to its wasm memory. */
export class Backend {
  /** Which kernel build runs. */
  readonly backend: BackendName;
  /** `new bn.BatchNorm(numFeatures, options)`: like torch.nn.BatchNorm1d/2d/3d. */
  readonly BatchNorm: new (numFeatures: number, options?: BatchNormModuleOptions) => BatchNormModule;
  /** `new bn.RunningStats(numFeatures)`; `bn.RunningStats.fromJSON(json)`. */
  readonly RunningStats: {
    new (numFeatures: number): RunningStatsBase;
    fromJSON(json: RunningStatsJSON): RunningStatsBase;
  };
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
    this.BatchNorm = class extends BatchNormModule {
      constructor(numFeatures: number, options?: BatchNormModuleOptions) {
        super(engine, numFeatures, options);
      }
    };
    this.RunningStats = class extends RunningStatsBase {
      constructor(numFeatures: number) {
        super(engine, numFeatures);
      }
      static fromJSON(json: RunningStatsJSON): RunningStatsBase {
        const j = RunningStatsBase.validateJSON(json);
        return new this(j.numFeatures).load(j);
      }
    };
  }

  /** Forward pass (training by default); see BatchNormOptions. */
  batchNorm(x: Float32Array | WasmTensor, options: BatchNormOptions): BatchNormResult {
    return batchNorm(this.engine, x, options);
  }

  /** Gradients of sum(y * dy) for x, weight and bias; see BatchNormBackwardOptions. */
  batchNormBackward(dy: Float32Array | WasmTensor, x: Float32Array | WasmTensor, options: BatchNormBackwardOptions): BatchNormBackwardResult {
    return batchNormBackward(this.engine, dy, x, options);
  }

  /**
   * batchNorm without blocking the caller: the work runs on this backend's worker threads (on the
   * calling thread where there are none, see `threads`). Calls on one backend run one at a time in
   * the order made; a sync call while one is pending throws. Leave the inputs unchanged until it resolves.
   */
  batchNormAsync(x: Float32Array | WasmTensor, options: BatchNormOptions): Promise<BatchNormResult> {
    return batchNormAsync(this.engine, x, options);
  }

  /** batchNormBackward without blocking the caller (as batchNormAsync). */
  batchNormBackwardAsync(dy: Float32Array | WasmTensor, x: Float32Array | WasmTensor, options: BatchNormBackwardOptions): Promise<BatchNormBackwardResult> {
    return batchNormBackwardAsync(this.engine, dy, x, options);
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

  /** A zero-filled tensor of `length` floats in this backend's wasm memory; `free()` it when done. */
  alloc(length: number): WasmTensor {
    if (!Number.isSafeInteger(length) || length < 0) {
      throw new RangeError(`length: expected a non-negative integer, got ${describe(length)}`);
    }
    if (length > 2 ** 30) throw new RangeError(`length: ${length} floats do not fit in wasm32 memory (4 GiB)`);
    const t = new WasmTensor(this.engine.memory, length);
    t.data.fill(0);
    return t;
  }

  /** Bytes of wasm linear memory (grows in large steps, never shrinks). */
  get memoryBytes(): number {
    return this.engine.memory.buffer.byteLength;
  }

  /** Linear memory size, bytes held by live blocks, and blocks allocated so far (to check zero-copy use and leaks). */
  memoryStats(): { bytes: number; inUse: number; allocations: number } {
    const m = this.engine.memory;
    return { bytes: m.buffer.byteLength, inUse: m.bytesInUse, allocations: m.allocations };
  }
}

const loaded = new Map<string, Promise<Backend>>();

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
 * Loads a backend once per build and thread count; concurrent and repeated calls share it.
 * `init({ threads: 1 })` and `init({ threads: 2 })` are two independent backends.
 */
export function init(options: InitOptions = {}): Promise<Backend> {
  if (options === null || typeof options !== "object") {
    return Promise.reject(new TypeError(`options: expected an object, got ${describe(options)}`));
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
