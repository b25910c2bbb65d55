// wasm-batchnorm: batch normalization with PyTorch's semantics, computed by AssemblyScript kernels
// compiled to WebAssembly (128-bit SIMD where the engine has it, scalar otherwise).
//
//   const bn = await init();
//   const { y, mean, invstd } = bn.batchNorm(x, { shape: [N, C, H, W], weight, bias, runningMean, runningVar });
//
// init() loads the embedded wasm once per backend; everything else is synchronous.
import {
  batchNorm, batchNormBackward, BatchNormOptions, BatchNormResult, BatchNormBackwardOptions, BatchNormBackwardResult,
} from "./batchnorm.js";
import { Engine } from "./engine.js";
import { BackendName, instantiate, simdSupported } from "./kernels.js";
import { WasmTensor } from "./memory.js";
import { BatchNorm as BatchNormModule, BatchNormModuleOptions } from "./module.js";
import { RunningStats as RunningStatsBase, RunningStatsJSON } from "./running-stats.js";
import { describe } from "./validate.js";

export type { BatchNormOptions, BatchNormResult, BatchNormBackwardOptions, BatchNormBackwardResult } from "./batchnorm.js";
export type { BatchNormModuleOptions, BatchNormStateDict } from "./module.js";
export type { RunningStatsJSON } from "./running-stats.js";
export type { Layout, Tensor } from "./validate.js";
export type { BackendName } from "./kernels.js";
export { WasmTensor } from "./memory.js";
export type { BatchNorm } from "./module.js";
export type { RunningStats } from "./running-stats.js";

export interface InitOptions {
  /** Force a build; by default SIMD where WebAssembly.validate accepts it, else scalar. */
  backend?: BackendName;
}

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

const loaded = new Map<BackendName, Promise<Backend>>();

/** Loads a backend once; concurrent and repeated calls share it. */
export function init(options: InitOptions = {}): Promise<Backend> {
  if (options === null || typeof options !== "object") {
    return Promise.reject(new TypeError(`options: expected an object, got ${describe(options)}`));
  }
  const requested = options.backend;
  if (requested !== undefined && requested !== "simd" && requested !== "scalar") {
    return Promise.reject(new TypeError(`backend: expected 'simd' or 'scalar', got ${describe(requested)}`));
  }
  const name: BackendName = requested ?? (simdSupported() ? "simd" : "scalar");
  let p = loaded.get(name);
  if (!p) {
    if (name === "simd" && !simdSupported()) {
      return Promise.reject(new Error("backend: this engine does not support WebAssembly SIMD; use 'scalar'"));
    }
    p = instantiate(name).then(({ kernels, memory }) => new Backend(new Engine(name, kernels, memory)));
    p.catch(() => loaded.delete(name));
    loaded.set(name, p);
  }
  return p;
}
