// BatchNorm, the module: torch.nn.BatchNorm1d/2d/3d in one class. It owns weight, bias, running
// statistics and the counter, keeps what backward needs from the last forward (the input, and the
// statistics in float64), and reads and writes PyTorch's state_dict keys.
import { Engine, Running, Steps } from "./engine.js";
import { WasmTensor } from "./memory.js";
import {
  Layout, Tensor, checkBatchStats, checkBoolean, checkEps, checkLayout, checkMomentum, checkTensor, describe, geometry,
  Geometry,
} from "./validate.js";

export interface BatchNormModuleOptions {
  eps?: number;
  /** Running-average factor, or null for the cumulative average (factor 1 / numBatchesTracked). Default 0.1. */
  momentum?: number | null;
  /** Learnable weight (init 1) and bias (init 0). Default true. */
  affine?: boolean;
  /** Keep running statistics; without them eval mode normalizes with batch statistics. Default true. */
  trackRunningStats?: boolean;
  layout?: Layout;
}

/** PyTorch's state_dict of a BatchNorm module. */
export interface BatchNormStateDict {
  weight?: Float32Array;
  bias?: Float32Array;
  running_mean?: Float32Array;
  running_var?: Float32Array;
  num_batches_tracked?: number;
}

interface Saved {
  g: Geometry;
  /** Input address; `owned` blocks belong to the module, else the caller's WasmTensor (kept by reference). */
  x: number;
  tensor: WasmTensor | null;
  mean64: Float64Array;
  invstd64: Float64Array;
  batchStats: boolean;
}

export class BatchNorm {
  readonly numFeatures: number;
  readonly eps: number;
  readonly momentum: number | null;
  readonly affine: boolean;
  readonly trackRunningStats: boolean;
  readonly layout: Layout;
  weight: Float32Array | null;
  bias: Float32Array | null;
  runningMean: Float32Array | null;
  runningVar: Float32Array | null;
  numBatchesTracked = 0;
  weightGrad: Float32Array | null = null;
  biasGrad: Float32Array | null = null;
  training = true;

  private readonly engine: Engine;
  private saved: Saved | null = null;
  /** Module-owned copy of the last input (reused across calls). */
  private block = 0;
  private blockBytes = 0;
  private readonly cleanup: { block: number };
  private static readonly registry = new FinalizationRegistry<{ engine: Engine; ref: { block: number } }>(
    ({ engine, ref }) => ref.block && engine.memory.release(ref.block),
  );

  constructor(engine: Engine, numFeatures: number, options: BatchNormModuleOptions = {}) {
    if (!Number.isSafeInteger(numFeatures) || numFeatures < 1) {
      throw new RangeError(`numFeatures: expected a positive integer, got ${describe(numFeatures)}`);
    }
    if (options === null || typeof options !== "object") throw new TypeError(`options: expected an object, got ${describe(options)}`);
    this.engine = engine;
    this.numFeatures = numFeatures;
    this.eps = checkEps(options.eps);
    this.momentum = checkMomentum(options.momentum, true);
    this.affine = checkBoolean("affine", options.affine, true);
    this.trackRunningStats = checkBoolean("trackRunningStats", options.trackRunningStats, true);
    this.layout = checkLayout(options.layout);
    this.weight = this.affine ? new Float32Array(numFeatures).fill(1) : null;
    this.bias = this.affine ? new Float32Array(numFeatures) : null;
    this.runningMean = this.trackRunningStats ? new Float32Array(numFeatures) : null;
    this.runningVar = this.trackRunningStats ? new Float32Array(numFeatures).fill(1) : null;
    this.cleanup = { block: 0 };
    BatchNorm.registry.register(this, { engine, ref: this.cleanup }, this);
  }

  train(mode = true): this {
    this.training = checkBoolean("mode", mode, true);
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Normalizes `x` (shape in memory order, this module's layout); returns a new Float32Array. */
  forward(x: Tensor, shape: readonly number[]): Float32Array {
    return this.engine.run("forward", this.forwardSteps(x, shape));
  }

  /** forward on the worker pool: resolves with the same output, never blocking the caller. */
  forwardAsync(x: Tensor, shape: readonly number[]): Promise<Float32Array> {
    return this.engine.runAsync(() => this.forwardSteps(x, shape));
  }

  private *forwardSteps(x: Tensor, shape: readonly number[]): Steps<Float32Array> {
    const memory = this.engine.memory;
    checkTensor("x", x, memory);
    const g = geometry(shape, this.layout, x.length);
    if (g.c !== this.numFeatures) {
      throw new RangeError(`x: expected ${this.numFeatures} channels (numFeatures), got ${g.c} in shape [${g.shape.join(", ")}]`);
    }
    this.checkParams();
    const batchStats = this.training || !this.trackRunningStats;
    if (batchStats) checkBatchStats(g);
    if (g.length === 0) {
      this.saved = null;
      return new Float32Array(0);
    }
    const engine = this.engine;
    const sc = engine.scratch(g.c);
    this.saved = null; // from here on, the input block may be replaced
    let xp: number;
    if (x instanceof WasmTensor) xp = x.ptr;
    else {
      xp = this.reserve(g.length * 4);
      memory.f32(xp, g.length).set(x);
    }
    const y = new Float32Array(g.length);
    const running: Running | null = this.runningMean && { mean: this.runningMean, variance: this.runningVar! };
    let factor: number | null = null;
    if (this.training && running) factor = this.momentum ?? 1 / (this.numBatchesTracked + 1);
    yield* engine.forward(xp, y, g, sc, this.weight, this.bias, this.eps, batchStats, running, factor);
    if (this.training && running) this.numBatchesTracked += 1;
    this.saved = {
      g,
      x: xp,
      tensor: x instanceof WasmTensor ? x : null,
      mean64: batchStats ? engine.f64(sc.mean, g.c).slice() : new Float64Array(this.runningMean!),
      invstd64: engine.f64(sc.invstd, g.c).slice(),
      batchStats,
    };
    return y;
  }

  /** Gradient of the last forward: returns dx and sets weightGrad / biasGrad (when affine). */
  backward(dy: Tensor): Float32Array {
    return this.engine.run("backward", this.backwardSteps(dy));
  }

  /** backward on the worker pool: resolves with the same dx, never blocking the caller. */
  backwardAsync(dy: Tensor): Promise<Float32Array> {
    return this.engine.runAsync(() => this.backwardSteps(dy));
  }

  private *backwardSteps(dy: Tensor): Steps<Float32Array> {
    const memory = this.engine.memory;
    checkTensor("dy", dy, memory);
    const saved = this.saved;
    if (!saved) throw new TypeError("backward: call forward first (no forward statistics are saved)");
    if (saved.tensor?.freed) throw new TypeError("backward: the WasmTensor given to forward has been freed");
    const { g } = saved;
    if (dy.length !== g.length) throw new RangeError(`dy: expected length ${g.length} (as the last forward's x), got ${dy.length}`);
    this.checkParams();
    const engine = this.engine;
    const sc = engine.scratch(g.c);
    const dx = new Float32Array(g.length);
    const { dweight, dbias } = yield* engine.backward(engine.operand(dy), saved.x, dx, g, sc, this.weight, saved.mean64, saved.invstd64, saved.batchStats);
    if (this.affine) {
      this.weightGrad = dweight;
      this.biasGrad = dbias;
    }
    return dx;
  }

  /** Copies of the state under PyTorch's keys. */
  stateDict(): BatchNormStateDict {
    const sd: BatchNormStateDict = {};
    if (this.weight) sd.weight = this.weight.slice();
    if (this.bias) sd.bias = this.bias.slice();
    if (this.runningMean) sd.running_mean = this.runningMean.slice();
    if (this.runningVar) sd.running_var = this.runningVar.slice();
    if (this.trackRunningStats) sd.num_batches_tracked = this.numBatchesTracked;
    return sd;
  }

  /** Loads a state_dict (strict, as torch: every key this module has, and no other); nothing changes if it throws. */
  loadStateDict(sd: BatchNormStateDict): void {
    if (sd === null || typeof sd !== "object") throw new TypeError(`stateDict: expected an object, got ${describe(sd)}`);
    const expected = Object.keys(this.stateDict());
    for (const key of Object.keys(sd)) {
      if (!expected.includes(key)) throw new TypeError(`stateDict: unexpected key '${key}' (expected ${expected.join(", ")})`);
    }
    const record = sd as Record<string, unknown>;
    for (const key of expected) {
      const v = record[key];
      if (key === "num_batches_tracked") {
        if (!Number.isSafeInteger(v) || (v as number) < 0) {
          throw new TypeError(`stateDict.num_batches_tracked: expected a non-negative integer, got ${describe(v)}`);
        }
      } else if (!(v instanceof Float32Array) && !(Array.isArray(v) && v.every((e) => typeof e === "number"))) {
        throw new TypeError(`stateDict.${key}: expected a Float32Array or number[], got ${describe(v)}`);
      } else if ((v as ArrayLike<number>).length !== this.numFeatures) {
        throw new RangeError(`stateDict.${key}: expected length ${this.numFeatures}, got ${(v as ArrayLike<number>).length}`);
      }
    }
    if (sd.weight) this.weight!.set(sd.weight);
    if (sd.bias) this.bias!.set(sd.bias);
    if (sd.running_mean) this.runningMean!.set(sd.running_mean);
    if (sd.running_var) this.runningVar!.set(sd.running_var);
    if (sd.num_batches_tracked !== undefined) this.numBatchesTracked = sd.num_batches_tracked;
  }

  /** Frees the wasm memory this module holds (also done when it is garbage-collected). */
  dispose(): void {
    if (this.block) this.engine.memory.release(this.block);
    this.block = this.blockBytes = this.cleanup.block = 0;
    this.saved = null;
    BatchNorm.registry.unregister(this);
  }

  /** The module's input block, at least `bytes` long. */
  private reserve(bytes: number): number {
    if (bytes > this.blockBytes) {
      const block = this.engine.memory.alloc(bytes);
      if (this.block) this.engine.memory.release(this.block);
      this.block = this.cleanup.block = block;
      this.blockBytes = bytes;
    }
    return this.block;
  }

  /** weight, bias and the running statistics are public and replaceable: check them per call. */
  private checkParams(): void {
    const c = this.numFeatures;
    const entries: [string, Float32Array | null, boolean][] = [
      ["weight", this.weight, this.affine],
      ["bias", this.bias, this.affine],
      ["runningMean", this.runningMean, this.trackRunningStats],
      ["runningVar", this.runningVar, this.trackRunningStats],
    ];
    for (const [name, v, present] of entries) {
      if (!present) continue;
      if (!(v instanceof Float32Array)) throw new TypeError(`${name}: expected a Float32Array, got ${describe(v)}`);
      if (v.length !== c) throw new RangeError(`${name}: expected length ${c}, got ${v.length}`);
    }
  }
}
