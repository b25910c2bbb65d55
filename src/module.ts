// BatchNorm, the module: torch.nn.BatchNorm1d/2d/3d in one class. It owns weight, bias, running
// statistics and the counter, keeps what backward needs from the last forward (the input, and the
// statistics in float64), accumulates gradients as PyTorch's .grad does, reads and writes PyTorch's
// state_dict keys, and has a JSON form of its own (options, parameters, buffers, counter). Ghost
// batches run through ghost.ts, batch renormalization through renorm.ts. With `activation: 'relu'`
// it is BatchNorm followed by a ReLU, fused into the same passes.
import {
  Imported, KerasBatchNormalizationOutput, OnnxBatchNormalizationOutput, Origin, toKeras, toOnnx,
} from "./conventions.js";
import { Engine, ForwardSpec, GivenStatistics, Operand, Reduced, ReluMask, Reweight, Running, Statistics, Steps } from "./engine.js";
import { Chunk, RenormChunk, backwardChunks, chunksOf, concat, forwardChunks } from "./ghost.js";
import { JsonFloat, f32ToJSON, floatsFromJSON, parseJSON } from "./json.js";
import { WasmTensor } from "./memory.js";
import { RunningStats } from "./running-stats.js";
import { renormalize } from "./renorm.js";
import {
  Activation, BatchRenormOptions, Layout, Tensor, checkActivation, checkBoolean, checkChunkStats, checkEps, checkFloat32Array, checkKeys,
  checkLayout, checkMomentum, checkNumFeatures, checkRenorm, checkRunningVariance, checkTensor, checkVirtualBatchSize, describe, geometry,
  Geometry, RunningVariance, unknownKey,
} from "./validate.js";

/** Options of `new bn.BatchNorm(numFeatures, options)`; each matches torch.nn.BatchNorm2d's argument of the same name. */
export interface BatchNormModuleOptions {
  /** Added to the variance before the square root: a finite number > 0. Default `1e-5`. */
  eps?: number;
  /**
   * Running-average factor in [0, 1]: `running = (1 - momentum) * running + momentum * batch`; or
   * `null` for the cumulative average (factor `1 / numBatchesTracked`). Default `0.1`.
   */
  momentum?: number | null;
  /** Learnable `weight` (initialized to 1) and `bias` (to 0). Default `true`. */
  affine?: boolean;
  /** Keras's `scale`: whether the module has `weight` (else 1). Default `affine`. */
  scale?: boolean;
  /** Keras's `center`: whether the module has `bias` (else 0). Default `affine`. */
  center?: boolean;
  /**
   * Which batch variance updates `runningVar`: `'unbiased'` (PyTorch) or `'biased'` (Keras,
   * TensorFlow.js, ONNX). Default `'unbiased'`.
   */
  runningVariance?: RunningVariance;
  /**
   * Keep running statistics (`runningMean` 0, `runningVar` 1, `numBatchesTracked`) and normalize
   * with them in eval mode; without them eval mode normalizes with batch statistics. Default `true`.
   */
  trackRunningStats?: boolean;
  /** Memory order of the inputs. Default `'channels-first'`. */
  layout?: Layout;
  /**
   * Ghost batches: in training mode the batch is cut into consecutive chunks of this many samples
   * along N (the last chunk holds the rest; a size >= N is one chunk), each normalized with its own
   * statistics, the running statistics and `numBatchesTracked` updated once per chunk in order:
   * exactly the module called on each chunk in turn. Every chunk needs more than one value per
   * channel. Eval mode ignores it (also without running statistics: the whole batch's statistics).
   * An integer >= 1, or `null` for none. Default `null`.
   */
  virtualBatchSize?: number | null;
  /**
   * Batch renormalization (see {@link BatchRenormOptions}), in training mode; needs running
   * statistics (`trackRunningStats: true`). Eval mode is plain eval. Default `null` (none).
   */
  renorm?: BatchRenormOptions | null;
  /**
   * `'relu'`: the layer is BatchNorm followed by a ReLU (`nn.Sequential(nn.BatchNorm2d(C), nn.ReLU())`),
   * fused: forward returns max(0, y) from the same pass, and backward zeroes dy where that output was
   * <= 0 (with `renorm`, the renormalized output). A frozen module with it keeps its input for the mask.
   * Default `'none'`.
   */
  activation?: Activation;
}

/** PyTorch's state_dict of a BatchNorm module, as {@link BatchNorm.stateDict} returns it (copies). */
export interface BatchNormStateDict {
  weight?: Float32Array;
  bias?: Float32Array;
  running_mean?: Float32Array;
  running_var?: Float32Array;
  num_batches_tracked?: number;
}

/**
 * Per-channel values as {@link BatchNorm.loadStateDict} accepts them: a Float32Array, or an array of
 * numbers (from JSON: also "NaN", "Infinity", "-Infinity" and "-0").
 */
export type FloatList = Float32Array | readonly JsonFloat[];

/**
 * A state_dict as {@link BatchNorm.loadStateDict} accepts it: what `stateDict()` returns, its JSON
 * form parsed back, or PyTorch's `state_dict()` dumped as lists (see the README).
 */
export interface BatchNormStateDictInput {
  weight?: FloatList;
  bias?: FloatList;
  running_mean?: FloatList;
  running_var?: FloatList;
  /** Optional: without it the counter loads as 0, as PyTorch does for state dicts without version metadata. */
  num_batches_tracked?: number;
}

/**
 * The JSON form of a BatchNorm module (`JSON.stringify(layer)`; `bn.BatchNorm.fromJSON`): its
 * options, parameters, running statistics and counter. Float32 values are written as the shortest
 * decimals that round back to them, so the round trip is exact. Training mode and gradients are not
 * part of it (a loaded module is in training mode with no gradients).
 */
export interface BatchNormJSON {
  numFeatures: number;
  eps: number;
  momentum: number | null;
  affine: boolean;
  /**
   * Written when scale and center differ (default `affine`), as `center`; `runningVariance` when
   * `'biased'` (default `'unbiased'`).
   */
  scale?: boolean;
  center?: boolean;
  runningVariance?: RunningVariance;
  trackRunningStats: boolean;
  layout: Layout;
  /** Absent in JSON written before fused activations existed: `'none'`. */
  activation?: Activation;
  /** `null` without affine parameters. */
  weight: JsonFloat[] | null;
  bias: JsonFloat[] | null;
  /** `null` for a module created with `trackRunningStats: false` (it has no running statistics). */
  runningMean: JsonFloat[] | null;
  runningVar: JsonFloat[] | null;
  numBatchesTracked: number;
  /** Written when set; absent means none. */
  virtualBatchSize?: number;
  /** Written when set; absent means none. */
  renorm?: Required<BatchRenormOptions>;
}

/** A checked BatchNormJSON, decoded. */
interface ParsedJSON {
  options: Required<BatchNormModuleOptions>;
  numFeatures: number;
  trackRunningStats: boolean;
  weight: Float64Array | null;
  bias: Float64Array | null;
  runningMean: Float64Array | null;
  runningVar: Float64Array | null;
  numBatchesTracked: number;
}

interface Saved {
  g: Geometry;
  /** Input address: the module's block, or the caller's WasmTensor (kept by reference). */
  x: number;
  tensor: WasmTensor | null;
  mean64: Float64Array;
  invstd64: Float64Array;
  batchStats: boolean;
  /** With a fused ReLU: the forward's weight and bias (copies), which its mask is recomputed with. */
  relu: ReluMask | null;
  /** A frozen forward: the running variance it normalized with (backward scales dy by weight / sqrt(it + eps)); else null. */
  frozenVar: Float32Array | null;
  /** The forward was frozen: backward keeps no weight or bias gradients. */
  frozen: boolean;
  /** The ghost batches (one chunk without them); mean64 and invstd64 hold C values per chunk. */
  chunks: Chunk[];
  /** Per chunk, batch renormalization's r, d and weight (null in warm-up), or null without it. */
  renorm: (RenormChunk | null)[] | null;
}

/** The parameters and buffers resolved for one call (wasm views become addresses). */
interface Params {
  weight: Operand | null;
  bias: Operand | null;
  running: Running | null;
}

const MODULE_OPTIONS: ReadonlySet<string> = new Set([
  "eps", "momentum", "affine", "scale", "center", "runningVariance", "trackRunningStats", "layout", "virtualBatchSize", "renorm",
  "activation",
]);
const JSON_FIELDS: ReadonlySet<string> = new Set([
  "numFeatures", "eps", "momentum", "affine", "trackRunningStats", "layout", "weight", "bias", "runningMean", "runningVar",
  "numBatchesTracked",
]);
/** JSON fields added after the first release: absent in older files (virtualBatchSize and renorm: written when set). */
const OPTIONAL_JSON_FIELDS: ReadonlySet<string> = new Set(["scale", "center", "runningVariance", "virtualBatchSize", "renorm", "activation"]);
/** state_dict key, property, and whether it is a running-statistics buffer (else an affine parameter). */
const STATE_KEYS = [
  ["weight", "weight", false],
  ["bias", "bias", false],
  ["running_mean", "runningMean", true],
  ["running_var", "runningVar", true],
] as const;
const NONE = new Float64Array(0);

/** Float32 state as JSON; a stateDict's toJSON (non-enumerable, so the keys stay PyTorch's). */
function stateDictToJSON(this: BatchNormStateDict): Record<string, JsonFloat[] | number> {
  const out: Record<string, JsonFloat[] | number> = {};
  for (const [key, v] of Object.entries(this)) out[key] = v instanceof Float32Array ? f32ToJSON(v) : v;
  return out;
}

/**
 * Batch normalization as a layer, like `torch.nn.BatchNorm1d/2d/3d` (one class for any number of
 * spatial dimensions): learnable `weight` and `bias`, running statistics updated in training mode
 * and used in eval mode, and `backward` for the gradients of the last forward. Create it with
 * `new bn.BatchNorm(numFeatures, options)` on a loaded backend.
 *
 * @example
 * const layer = new bn.BatchNorm(3);
 * const y = layer.forward(x, [4, 3, 5, 5]); // training mode
 * const dx = layer.backward(dy);             // accumulates layer.weightGrad, layer.biasGrad
 * layer.zeroGrad();
 * layer.eval();                              // normalize with the running statistics
 */
export class BatchNorm {
  /** Channels (C), 1 to 2^24. */
  readonly numFeatures: number;
  /** Added to the variance (default 1e-5). */
  readonly eps: number;
  /** Running-average factor, or `null` for the cumulative average (default 0.1). */
  readonly momentum: number | null;
  /** Whether the module has `weight` and `bias` (true when it has either: see `scale`, `center`). */
  readonly affine: boolean;
  /** Whether the module has `weight`. */
  readonly scale: boolean;
  /** Whether the module has `bias`. */
  readonly center: boolean;
  /** Which batch variance updates `runningVar` (default `'unbiased'`, PyTorch's). */
  readonly runningVariance: RunningVariance;
  /** Memory order of the inputs. */
  readonly layout: Layout;
  /** `'relu'` for BatchNorm followed by a fused ReLU, else `'none'`. */
  readonly activation: Activation;
  /** Samples per ghost batch in training mode, or `null` for none (see {@link BatchNormModuleOptions.virtualBatchSize}). */
  readonly virtualBatchSize: number | null;
  /** Per-channel scale (length C; `null` without affine). Replaceable by another Float32Array of length C. */
  weight: Float32Array | null;
  /** Per-channel shift (length C; `null` without affine). */
  bias: Float32Array | null;
  /** Running mean (length C; `null` for a module created with `trackRunningStats: false`). Updated in place. */
  runningMean: Float32Array | null;
  /** Running (unbiased) variance (length C; `null` for a module created with `trackRunningStats: false`). */
  runningVar: Float32Array | null;
  /** Training forwards that updated the running statistics (also empty batches, as PyTorch counts them). */
  numBatchesTracked = 0;
  /** Gradient of `weight`, summed over `backward` calls since the last `zeroGrad()` (`null` before any). */
  weightGrad: Float32Array | null = null;
  /** Gradient of `bias`, summed like `weightGrad`. */
  biasGrad: Float32Array | null = null;
  /** Training mode (batch statistics, running statistics updated); `eval()` clears it. */
  training = true;

  private isFrozen = false;
  /** Exact statistics of the inputs since startStatistics(), or null when not collecting. */
  private population: RunningStats | null = null;

  private tracking: boolean;
  private renormSettings: Readonly<Required<BatchRenormOptions>> | null;
  /** The Keras layer or ONNX node the module was read from, written back by toKeras / toOnnx. */
  private origin: Origin | null = null;
  /** The module was created with running statistics (PyTorch's buffers); they stay when tracking is switched off. */
  private readonly buffers: boolean;
  protected readonly engine: Engine;
  protected saved: Saved | null = null;
  /** The module's copy of the last input (reused across calls), released by dispose() or on garbage collection. */
  private readonly held = { block: 0, bytes: 0 };
  private static readonly registry = new FinalizationRegistry<{ engine: Engine; held: { block: number } }>(
    ({ engine, held }) => held.block && engine.memory.release(held.block),
  );

  /** @internal use `new bn.BatchNorm(numFeatures, options)` */
  constructor(engine: Engine, numFeatures: number, options: BatchNormModuleOptions = {}) {
    checkNumFeatures("numFeatures", numFeatures);
    checkKeys(options, MODULE_OPTIONS);
    this.engine = engine;
    this.numFeatures = numFeatures;
    this.eps = checkEps(options.eps);
    this.momentum = checkMomentum(options.momentum, true);
    const affine = checkBoolean("affine", options.affine, true);
    this.scale = checkBoolean("scale", options.scale, affine);
    this.center = checkBoolean("center", options.center, affine);
    this.affine = this.scale || this.center;
    this.runningVariance = checkRunningVariance(options.runningVariance);
    this.tracking = this.buffers = checkBoolean("trackRunningStats", options.trackRunningStats, true);
    this.layout = checkLayout(options.layout);
    this.activation = checkActivation(options.activation);
    this.virtualBatchSize = checkVirtualBatchSize(options.virtualBatchSize);
    this.renormSettings = this.checkedRenorm(options.renorm);
    this.weight = this.scale ? new Float32Array(numFeatures).fill(1) : null;
    this.bias = this.center ? new Float32Array(numFeatures) : null;
    this.runningMean = this.buffers ? new Float32Array(numFeatures) : null;
    this.runningVar = this.buffers ? new Float32Array(numFeatures).fill(1) : null;
    BatchNorm.registry.register(this, { engine, held: this.held });
  }

  /**
   * Whether training forwards update the running statistics and count batches. Writable, as in
   * PyTorch: switched off, a module that has running statistics keeps them (in `stateDict()` too,
   * with the counter), stops updating and counting, and still normalizes with them in eval mode;
   * switched on, a module created without them still has none.
   * @throws {TypeError} when set to a non-boolean.
   */
  get trackRunningStats(): boolean {
    return this.tracking;
  }

  set trackRunningStats(v: boolean) {
    if (typeof v !== "boolean") throw new TypeError(`trackRunningStats: expected a boolean, got ${describe(v)}`);
    this.tracking = v;
  }

  /**
   * Batch renormalization's settings (frozen, with `warmupSteps` filled in), or `null`. Writable, so a
   * schedule can raise rMax and dMax during training as the paper does.
   * @throws {TypeError|RangeError} when set to bad settings (named, e.g. `renorm.rMax`), or to any on a
   *   module created without running statistics; nothing changes then.
   * @example
   * layer.renorm = { rMax: 1 + 2 * progress, dMax: 5 * progress };
   */
  get renorm(): Readonly<Required<BatchRenormOptions>> | null {
    return this.renormSettings;
  }

  set renorm(v: BatchRenormOptions | null) {
    this.renormSettings = this.checkedRenorm(v);
  }

  private checkedRenorm(v: unknown): Readonly<Required<BatchRenormOptions>> | null {
    const settings = checkRenorm(v);
    if (settings && !this.buffers) throw new TypeError("renorm: needs running statistics (trackRunningStats: true)");
    return settings;
  }

  /**
   * Sets training mode (`true`, the default) or eval mode (`false`).
   * @returns this module.
   * @throws {TypeError} when `mode` is not a boolean.
   */
  train(mode = true): this {
    this.training = checkBoolean("mode", mode, true);
    return this;
  }

  /** Eval mode: normalize with the running statistics (batch statistics without them). @returns this module. */
  eval(): this {
    return this.train(false);
  }

  /**
   * Whether the module is frozen (torchvision's FrozenBatchNorm2d, for fine-tuning): it then
   * normalizes with its running statistics in every mode, never updates them or
   * `numBatchesTracked` (`loadStateDict` and `finishStatistics` still set them), and its backward gives `dx = dy * weight / sqrt(runningVar + eps)` and no
   * weight or bias gradients. `freeze()` / `unfreeze()` switch it; default `false`.
   */
  get frozen(): boolean {
    return this.isFrozen;
  }

  /**
   * Freezes the module (see {@link frozen}). `train()` and `eval()` do not unfreeze it; the state
   * dict and JSON form do not change (being frozen is not saved, like the mode).
   * @returns this module.
   * @throws {TypeError} for a module created with `trackRunningStats: false` (it has no running
   *   statistics to normalize with); nothing changes then.
   * @example
   * layer.freeze(); // fine-tune the layers around it; this one stays a fixed affine map
   * const y = layer.forward(x, shape); // running statistics, also in training mode
   * const dx = layer.backward(dy);     // weightGrad and biasGrad are left as they are
   */
  freeze(): this {
    if (!this.buffers) {
      throw new TypeError("freeze: this module has no running statistics (created with trackRunningStats: false) to normalize with");
    }
    this.isFrozen = true;
    return this;
  }

  /** Unfreezes the module: it follows its mode again (see {@link frozen}). @returns this module. */
  unfreeze(): this {
    this.isFrozen = false;
    return this;
  }

  /**
   * Normalizes `x` and keeps what `backward` needs. In training mode the running statistics are
   * updated (when tracked) and `numBatchesTracked` counts the batch, an empty one too. A frozen
   * module normalizes with its running statistics in either mode and keeps only those (not `x`).
   * @param x input: a Float32Array (copied into the module's wasm block for backward) or a
   *   WasmTensor (kept by reference: do not free or overwrite it before `backward`).
   * @param shape shape in memory order in this module's layout, with C = numFeatures.
   * @returns y, a new Float32Array.
   * @throws {TypeError|RangeError} for a bad argument, parameter or buffer (named), or one value per
   *   channel in training; nothing changes then, not even the saved forward.
   * @example
   * const y = layer.forward(x, [8, 64, 28, 28]); // channels-first, numFeatures 64
   */
  forward(x: Tensor, shape: readonly number[]): Float32Array {
    return this.engine.run("forward", this.forwardSteps(x, shape));
  }

  /**
   * forward on the worker pool: resolves with the same output, never blocking the caller (leave `x`
   * unchanged until it resolves). Rejects where forward throws.
   */
  forwardAsync(x: Tensor, shape: readonly number[]): Promise<Float32Array> {
    return this.engine.runAsync(() => this.forwardSteps(x, shape));
  }

  /** `given`: SyncBN's merged statistics to normalize with (training, not frozen; src/sync-batchnorm.ts). */
  protected *forwardSteps(x: Tensor, shape: readonly number[], given: GivenStatistics | null = null): Steps<Float32Array> {
    const memory = this.engine.memory;
    const xOp = checkTensor("x", x, memory);
    const g = geometry(shape, this.layout, x.length);
    if (g.c !== this.numFeatures) {
      throw new RangeError(`x: expected ${this.numFeatures} channels (numFeatures), got ${g.c} in shape [${g.shape.join(", ")}]`);
    }
    const p = this.params();
    const relu = this.activation === "relu";
    // frozen: eval-mode BN whatever the mode; through a ReLU backward needs x for the mask, so it
    // takes the eval-mode path below (and keeps no gradients), else the one-pass frozen path
    if (this.isFrozen && !relu) return yield* this.frozenForwardSteps(xOp, g, p);
    const training = this.training && !this.isFrozen;
    const batchStats = training || p.running === null;
    const chunks = chunksOf(g, training ? this.virtualBatchSize : null);
    if (batchStats && !given) checkChunkStats(chunks);
    const track = training && this.tracking && p.running !== null && this.population === null;
    if (g.length === 0 && !given) {
      if (track) this.numBatchesTracked += chunks.length;
      this.saved = {
        g, x: 0, tensor: null, mean64: NONE, invstd64: NONE, batchStats, frozenVar: null, frozen: this.isFrozen, chunks, renorm: null, relu: null,
      };
      return new Float32Array(0);
    }
    const engine = this.engine;
    const sc = engine.scratch(g.c);
    const seen = yield* this.populationPass(xOp, g, batchStats);
    // backward needs the input: a WasmTensor is kept by reference, anything else is copied into the
    // module's block once the forward has succeeded (the block may hold the saved forward's input)
    const bytes = g.length * 4;
    const held = this.held;
    const keep = x instanceof WasmTensor ? 0 : held.bytes >= bytes ? held.block : memory.alloc(bytes);
    const y = new Float32Array(g.length);
    const renorm: (RenormChunk | null)[] = [];
    let stats: Statistics[];
    try {
      const step = (k: number) => this.chunkStep(k, p, track, renorm);
      const source: ForwardSpec["stats"] = given ?? (batchStats ? "batch" : "running");
      // collecting population statistics: the batch's in float64 grade, in the same single pass
      const wide = this.population !== null;
      const o = { weight: p.weight, bias: p.bias, eps: this.eps, stats: source, running: p.running, relu, wide };
      stats = yield* forwardChunks(engine, xOp, y, chunks, sc, o, step);
    } catch (e) {
      if (keep !== 0 && keep !== held.block) memory.release(keep);
      throw e;
    }
    if (keep !== 0) {
      if (keep !== held.block) {
        if (held.block) memory.release(held.block);
        held.block = keep;
        held.bytes = bytes;
      }
      if (typeof xOp === "number") memory.copy(keep, xOp, bytes);
      else memory.f32(keep, g.length).set(xOp);
    }
    if (track) this.numBatchesTracked += chunks.length;
    if (seen) this.population!.addStatistics(seen);
    else for (const chunk of stats) this.population?.addStatistics(chunk);
    this.saved = {
      g,
      x: keep || (typeof xOp === "number" ? xOp : 0),
      tensor: x instanceof WasmTensor ? x : null,
      mean64: concat(stats.map((s) => s.mean)),
      invstd64: concat(stats.map((s) => s.invstd)),
      batchStats,
      frozenVar: null,
      chunks,
      renorm: renorm.some(Boolean) ? renorm : null,
      frozen: this.isFrozen,
      relu: relu ? { weight: this.copyOf(p.weight), bias: this.copyOf(p.bias) } : null,
    };
    return y;
  }

  /**
   * The frozen forward: eval-mode BN with the running statistics, whatever the mode; no update, no
   * count. Backward needs only the running variance, not x.
   */
  private *frozenForwardSteps(xOp: Operand, g: Geometry, p: Params): Steps<Float32Array> {
    const running = p.running!; // freeze() requires running statistics
    const y = new Float32Array(g.length);
    if (g.length > 0) {
      const seen = yield* this.populationPass(xOp, g, false);
      yield* this.engine.forward(xOp, y, g, this.engine.scratch(g.c), { weight: p.weight, bias: p.bias, eps: this.eps, stats: "running", running, factor: null });
      if (seen) this.population!.addStatistics(seen);
    }
    const frozenVar = this.engine.memory.floats(running.variance, g.c).slice();
    this.saved = {
      g, x: 0, tensor: null, mean64: NONE, invstd64: NONE, batchStats: false, frozenVar, frozen: true, chunks: chunksOf(g, null), renorm: null, relu: null,
    };
    return y;
  }

  /**
   * While collecting, the exact statistics of a non-empty x that the forward will not compute itself
   * (it normalizes with the running statistics): one statistics pass. Else null.
   */
  private *populationPass(xOp: Operand, g: Geometry, batchStats: boolean): Steps<Statistics | null> {
    if (this.population === null || batchStats) return null;
    return yield* this.engine.batchStats(xOp, g, this.engine.scratch(g.c), true);
  }

  /**
   * Starts collecting the exact population statistics of every input to `forward` and
   * `forwardAsync` (float64 count, mean and M2 per channel, merged by Chan et al.'s formula, as
   * {@link RunningStats}), until {@link finishStatistics}. Meanwhile forwards normalize as the mode
   * says, and the running statistics and `numBatchesTracked` are left alone (no moving-average
   * update, no count). In training mode the forward's own batch statistics are collected, computed to
   * float64 rounding (deviations squared in float64) in its usual single statistics pass, so y may
   * differ from a non-collecting SIMD forward's (float32 squares) within the accuracy bar; in eval
   * mode and when frozen, one exact statistics pass per forward (float64 rounding). Being collected is not part of the state dict or the JSON form, which show the running
   * statistics as they are.
   * @returns this module.
   * @throws {TypeError} for a module created with `trackRunningStats: false` (no running statistics
   *   to set), or while collecting already (finish or cancel first); nothing changes then.
   * @throws {Error} while an async call is in flight on this backend.
   * @example
   * layer.startStatistics();
   * for (const x of batches) layer.forward(x, [x.length / 3, 3]);
   * const stats = layer.finishStatistics(); // runningMean, runningVar: the population's
   */
  startStatistics(): this {
    return this.engine.run("startStatistics", this.startSteps());
  }

  private *startSteps(): Steps<this> {
    if (!this.buffers) {
      throw new TypeError("startStatistics: this module has no running statistics (created with trackRunningStats: false) to set");
    }
    if (this.population) {
      throw new TypeError("startStatistics: statistics are being collected already; finishStatistics() or cancelStatistics() ends that");
    }
    this.population = this.newRunningStats();
    return this;
  }

  /** @internal an empty accumulator of this backend's `bn.RunningStats` class (index.ts binds it) */
  protected newRunningStats(): RunningStats {
    return new RunningStats(this.engine, this.numFeatures);
  }

  /**
   * Ends the collection begun by {@link startStatistics}: sets `runningMean` and `runningVar` to the
   * mean and the variance of everything the forwards saw (unbiased, or biased with
   * `runningVariance: 'biased'`, as the module's running variance is), rounded once to float32, and
   * returns those statistics in float64. `numBatchesTracked` is left as it is.
   * @returns the collected statistics (count, mean, `variance()`), no longer tied to the module.
   * @throws {TypeError} when no statistics are being collected.
   * @throws {RangeError} with fewer than 2 values per channel collected (1 with `runningVariance:
   *   'biased'`): no such variance; nothing changes then, and the collection goes on.
   * @throws {TypeError|RangeError} when `runningMean` or `runningVar` was replaced by something invalid.
   * @throws {Error} while an async call is in flight on this backend.
   * @example
   * const stats = layer.finishStatistics();
   * console.log(stats.count, layer.runningMean, layer.runningVar);
   */
  finishStatistics(): RunningStats {
    return this.engine.run("finishStatistics", this.finishSteps());
  }

  private *finishSteps(): Steps<RunningStats> {
    const stats = this.population;
    if (stats === null) throw new TypeError("finishStatistics: no statistics are being collected (call startStatistics() first)");
    const unbiased = this.runningVariance === "unbiased";
    if (stats.count < (unbiased ? 2 : 1)) {
      const need = unbiased ? "more than 1 value per channel for the unbiased variance" : "at least 1 value per channel";
      throw new RangeError(`finishStatistics: expected ${need}, got ${stats.count}`);
    }
    const memory = this.engine.memory;
    const c = this.numFeatures;
    const mean = checkFloat32Array("runningMean", this.runningMean, c, memory);
    const variance = checkFloat32Array("runningVar", this.runningVar, c, memory);
    memory.floats(mean, c).set(stats.mean);
    memory.floats(variance, c).set(stats.variance({ unbiased }));
    this.population = null;
    return stats;
  }

  /** Ends a collection begun by {@link startStatistics} without using it (nothing else changes; no-op when not collecting). */
  cancelStatistics(): void {
    this.population = null;
  }

  /** Whether statistics are being collected (between {@link startStatistics} and its finish or cancel). */
  get collectingStatistics(): boolean {
    return this.population !== null;
  }

  /**
   * Ghost batch k's running-average factor (the counter has counted the chunks before it) and, with
   * batch renormalization past its warm-up, the engine hook, which records r and d in `renorm`.
   */
  private chunkStep(k: number, p: Params, track: boolean, renorm: (RenormChunk | null)[]): { factor: number | null; reweight: Reweight | null } {
    const counter = this.numBatchesTracked + (track ? k : 0);
    const factor = track ? this.momentum ?? 1 / (counter + 1) : null;
    const s = this.training && p.running ? this.renormSettings : null;
    if (!s || counter < s.warmupSteps) {
      renorm.push(null);
      return { factor, reweight: null };
    }
    const memory = this.engine.memory;
    const c = this.numFeatures;
    const floats = (op: Operand | null) => (op === null ? null : memory.floats(op, c));
    const read = () => ({
      runningMean: floats(p.running!.mean)!, runningVar: floats(p.running!.variance)!, weight: floats(p.weight), bias: floats(p.bias),
    });
    return { factor, reweight: renormalize(s, this.eps, read, (chunk) => renorm.push(chunk)) };
  }

  /**
   * Gradients of the last forward for `dy`: returns dx and, with affine, adds dweight and dbias to
   * `weightGrad` and `biasGrad` (created on the first call after `zeroGrad()`), as PyTorch
   * accumulates `.grad`. Through batch statistics the gradient flows through them too. After a
   * frozen forward, dx = dy * weight / sqrt(runningVar + eps) (the running variance that forward
   * used) and `weightGrad` and `biasGrad` are left as they are (neither created nor added to), as
   * PyTorch leaves the `.grad` of parameters that do not require gradients.
   * @param dy gradient of the loss for y: Float32Array or WasmTensor of the forward's length.
   * @returns dx, a new Float32Array.
   * @throws {TypeError} before any forward, or when the forward's WasmTensor was freed.
   * @throws {TypeError|RangeError} for a bad `dy`, parameter or gradient array (named); nothing changes then.
   * @example
   * layer.zeroGrad();
   * const dx = layer.backward(dy);
   * for (let c = 0; c < layer.numFeatures; c++) layer.weight[c] -= lr * layer.weightGrad[c];
   */
  backward(dy: Tensor): Float32Array {
    return this.engine.run("backward", this.backwardSteps(dy));
  }

  /** backward on the worker pool: resolves with the same dx, never blocking the caller. Rejects where backward throws. */
  backwardAsync(dy: Tensor): Promise<Float32Array> {
    return this.engine.runAsync(() => this.backwardSteps(dy));
  }

  /**
   * `sync`: SyncBN's sums over every rank (with the merged count) to take instead of this batch's,
   * and this rank's own, whose gradients it keeps (as PyTorch's SyncBatchNorm; src/sync-batchnorm.ts).
   */
  protected *backwardSteps(dy: Tensor, sync: { reduced: Reduced & { count: number }; local: Reduced } | null = null): Steps<Float32Array> {
    const memory = this.engine.memory;
    const { dyOp, saved } = this.checkBackward(dy);
    const { g } = saved;
    const p = this.params();
    if (saved.frozenVar) return yield* this.frozenBackwardSteps(dyOp, saved.g, saved.frozenVar, p);
    const c = this.numFeatures;
    const wg = this.weightGrad === null ? null : checkFloat32Array("weightGrad", this.weightGrad, c, memory);
    const bg = this.biasGrad === null ? null : checkFloat32Array("biasGrad", this.biasGrad, c, memory);
    if (g.length === 0) {
      if (!saved.frozen) this.accumulate(wg, bg, new Float32Array(c), new Float32Array(c));
      return new Float32Array(0);
    }
    const engine = this.engine;
    const sc = engine.scratch(g.c);
    const dx = new Float32Array(g.length);
    if (sync) {
      const o = { weight: p.weight, mean: saved.mean64, invstd: saved.invstd64, training: true, relu: saved.relu, reduced: sync.reduced };
      yield* engine.backward(dyOp, saved.x, dx, g, sc, o);
      const { sumDy, sumDyXc } = sync.local;
      this.accumulate(wg, bg, new Float32Array(sumDyXc.map((s, i) => s * saved.invstd64[i])), new Float32Array(sumDy));
      return dx;
    }
    const { dweight, dbias } = yield* backwardChunks(
      engine, dyOp, saved.x, dx, saved.chunks, sc, p.weight, saved.mean64, saved.invstd64, saved.batchStats, saved.renorm, saved.relu,
    );
    if (!saved.frozen) this.accumulate(wg, bg, dweight, dbias);
    return dx;
  }

  /**
   * The frozen backward, dx = dy * weight / sqrt(frozenVar + eps): one normalize pass over dy with
   * mean 0 and no bias (the eval-mode dx form, assembly/coefficients.ts).
   */
  private *frozenBackwardSteps(dyOp: Operand, g: Geometry, frozenVar: Float32Array, p: Params): Steps<Float32Array> {
    const dx = new Float32Array(g.length);
    if (g.length === 0) return dx;
    const scaleOnly = { mean: new Float32Array(g.c), variance: frozenVar, biased: false }; // read, never updated
    yield* this.engine.forward(dyOp, dx, g, this.engine.scratch(g.c), { weight: p.weight, bias: null, eps: this.eps, stats: "running", running: scaleOnly, factor: null });
    return dx;
  }

  /** @internal the checks a backward starts with: a saved forward whose input still lives, and dy of its length */
  protected checkBackward(dy: Tensor): { dyOp: Operand; saved: Saved } {
    const dyOp = checkTensor("dy", dy, this.engine.memory);
    const saved = this.saved;
    if (!saved) throw new TypeError("backward: call forward first (no forward statistics are saved)");
    if (saved.tensor?.freed) throw new TypeError("backward: the WasmTensor given to forward has been freed");
    if (dy.length !== saved.g.length) throw new RangeError(`dy: expected length ${saved.g.length} (as the last forward's x), got ${dy.length}`);
    return { dyOp, saved };
  }

  /** Resets `weightGrad` and `biasGrad` to `null`, as PyTorch's `zero_grad()` (set_to_none, its default since 2.0). */
  zeroGrad(): void {
    this.weightGrad = this.biasGrad = null;
  }

  /**
   * Copies of the state under PyTorch's keys: `weight`, `bias` (affine), `running_mean`,
   * `running_var`, `num_batches_tracked` (when the module has running statistics, tracked or not).
   * `JSON.stringify` writes the arrays as lists of numbers, which `loadStateDict` accepts back.
   * @throws {TypeError|RangeError} when a parameter or buffer was replaced by something invalid.
   * @example
   * const saved = JSON.stringify(layer.stateDict()); // {"weight":[1,1,1],...,"num_batches_tracked":0}
   */
  stateDict(): BatchNormStateDict {
    const memory = this.engine.memory;
    const p = this.params();
    const c = this.numFeatures;
    const sd: BatchNormStateDict = {};
    if (p.weight !== null) sd.weight = memory.floats(p.weight, c).slice();
    if (p.bias !== null) sd.bias = memory.floats(p.bias, c).slice();
    if (p.running !== null) {
      sd.running_mean = memory.floats(p.running.mean, c).slice();
      sd.running_var = memory.floats(p.running.variance, c).slice();
      sd.num_batches_tracked = this.numBatchesTracked;
    }
    Object.defineProperty(sd, "toJSON", { value: stateDictToJSON });
    return sd;
  }

  /**
   * Loads a state_dict, strictly as PyTorch does: every key this module has (`num_batches_tracked`
   * may be missing: the counter becomes 0) and no other. Values are Float32Arrays or arrays of
   * numbers, so `JSON.parse(JSON.stringify(layer.stateDict()))` and PyTorch's state_dict dumped as
   * lists both load.
   * @throws {TypeError|RangeError} naming the key; nothing changes then.
   * @example
   * layer.loadStateDict(JSON.parse(saved));
   */
  loadStateDict(sd: BatchNormStateDictInput): void {
    if (sd === null || typeof sd !== "object") throw new TypeError(`stateDict: expected an object, got ${describe(sd)}`);
    const memory = this.engine.memory;
    const c = this.numFeatures;
    const entries = STATE_KEYS.filter(([, prop, buffer]) => (buffer ? this.buffers : prop === "weight" ? this.scale : this.center));
    const known = new Set([...entries.map(([key]) => key), ...(this.buffers ? ["num_batches_tracked"] : [])]);
    for (const key of Object.keys(sd)) {
      if (!known.has(key)) throw new TypeError(`stateDict: unexpected key '${key}'${unknownKey(key, known)}`);
    }
    const record = sd as Record<string, unknown>;
    const values = entries.map(([key]) => floatsFromJSON(`stateDict.${key}`, record[key], c));
    const counter = record.num_batches_tracked ?? 0;
    if (!Number.isSafeInteger(counter) || (counter as number) < 0) {
      throw new TypeError(`stateDict.num_batches_tracked: expected a non-negative integer, got ${describe(counter)}`);
    }
    const targets = entries.map(([, prop]) => checkFloat32Array(prop, this[prop], c, memory));
    targets.forEach((op, i) => memory.floats(op, c).set(values[i]));
    if (this.buffers) this.numBatchesTracked = counter as number;
  }

  /**
   * The JSON form (see {@link BatchNormJSON}); `JSON.stringify(layer)` calls it, and
   * `bn.BatchNorm.fromJSON` reads it back exactly.
   * @example
   * const copy = bn.BatchNorm.fromJSON(JSON.stringify(layer));
   */
  toJSON(): BatchNormJSON {
    const memory = this.engine.memory;
    const p = this.params();
    const c = this.numFeatures;
    const json = (op: Operand | null): JsonFloat[] | null => (op === null ? null : f32ToJSON(memory.floats(op, c)));
    return {
      numFeatures: c,
      eps: this.eps,
      momentum: this.momentum,
      affine: this.affine,
      // written only where they say more than affine and the default: older readers read the rest
      ...(this.scale !== this.center ? { scale: this.scale, center: this.center } : {}),
      ...(this.runningVariance !== "unbiased" ? { runningVariance: this.runningVariance } : {}),
      trackRunningStats: this.tracking,
      layout: this.layout,
      activation: this.activation,
      weight: json(p.weight),
      bias: json(p.bias),
      runningMean: json(p.running && p.running.mean),
      runningVar: json(p.running && p.running.variance),
      numBatchesTracked: this.numBatchesTracked,
      ...(this.virtualBatchSize !== null ? { virtualBatchSize: this.virtualBatchSize } : {}),
      ...(this.renormSettings ? { renorm: { ...this.renormSettings } } : {}),
    };
  }

  /**
   * The module as a Keras / TensorFlow.js BatchNormalization layer: its config (for a module made by
   * `bn.BatchNorm.fromKeras`, the config it was read from, unchanged; else TensorFlow.js's camelCase
   * keys with `axis` 1 or -1 for the layout and `momentum` = 1 - this momentum) and copies of its
   * weights under Keras's names (with the imported prefix). Keras trains with the biased running
   * variance: a module with `runningVariance: 'unbiased'` exports the same inference.
   * @throws {TypeError} for a module without running statistics, or with momentum `null`.
   * @example
   * const { config, weights } = layer.toKeras(); // weights.gamma, .beta, .moving_mean, .moving_variance
   */
  toKeras(): KerasBatchNormalizationOutput {
    return toKeras(this, this.origin);
  }

  /**
   * The module as an ONNX BatchNormalization node (opset 15): attributes (`epsilon`, `momentum` =
   * 1 - this momentum, or the imported ones; `training_mode` from the current mode) and copies of
   * `scale`, `B` (ones and zeros for a module without them), `input_mean`, `input_var`. The node is
   * channels-first (axis 1).
   * @throws {TypeError} for a module without running statistics, or with momentum `null`.
   * @example
   * const node = layer.toOnnx(); // node.attributes.epsilon, node.scale, node.B, ...
   */
  toOnnx(): OnnxBatchNormalizationOutput {
    return toOnnx(this, this.origin);
  }

  /** @internal sets the state of a module created from `j.options` by fromKeras / fromOnnx */
  adopt(j: Imported): this {
    this.restore({ ...j, trackRunningStats: true, numBatchesTracked: 0 });
    this.training = j.training;
    this.origin = j.origin;
    return this;
  }

  /**
   * Frees the wasm memory this module holds (the copy of its last input) and forgets the last
   * forward. The module stays usable; garbage collection also frees the memory.
   */
  dispose(): void {
    if (this.held.block) this.engine.memory.release(this.held.block);
    this.held.block = this.held.bytes = 0;
    this.saved = null;
  }

  /** @internal checks a BatchNormJSON (object or JSON text) for fromJSON; errors name the field. */
  static parseJSON(input: unknown): ParsedJSON {
    const j = parseJSON(input) as Record<keyof BatchNormJSON, unknown>;
    checkKeys(j, new Set([...JSON_FIELDS, ...OPTIONAL_JSON_FIELDS]), "json", "json.", "field");
    for (const key of JSON_FIELDS) if (j[key as keyof BatchNormJSON] === undefined) throw new TypeError(`json.${key}: missing`);
    const c = checkNumFeatures("json.numFeatures", j.numFeatures);
    const affine = checkBoolean("json.affine", j.affine, true);
    const scale = checkBoolean("json.scale", j.scale, affine);
    const center = checkBoolean("json.center", j.center, affine);
    if (affine !== (scale || center)) throw new TypeError(`json.affine: expected ${scale || center} (scale ${scale}, center ${center}), got ${affine}`);
    const per = (key: "weight" | "bias" | "runningMean" | "runningVar", present: boolean): Float64Array | null => {
      if (present) return floatsFromJSON(`json.${key}`, j[key], c);
      const flagName = key === "weight" ? "scale" : "center";
      const why = key === "runningMean" || key === "runningVar" ? "no running statistics" : j[flagName] === undefined ? "affine is false" : `${flagName} is false`;
      if (j[key] !== null) throw new TypeError(`json.${key}: expected null (${why}), got ${describe(j[key])}`);
      return null;
    };
    const buffers = j.runningMean !== null || j.runningVar !== null;
    const counter = j.numBatchesTracked;
    if (!Number.isSafeInteger(counter) || (counter as number) < 0) {
      throw new TypeError(`json.numBatchesTracked: expected a non-negative integer, got ${describe(counter)}`);
    }
    return {
      numFeatures: c,
      options: {
        eps: checkEps(j.eps, "json.eps"),
        momentum: checkMomentum(j.momentum, true, "json.momentum"),
        affine,
        scale,
        center,
        runningVariance: checkRunningVariance(j.runningVariance, "json.runningVariance"),
        trackRunningStats: buffers,
        layout: checkLayout(j.layout, "json.layout"),
        activation: checkActivation(j.activation, "json.activation"),
        virtualBatchSize: checkVirtualBatchSize(j.virtualBatchSize, "json.virtualBatchSize"),
        renorm: checkRenorm(j.renorm, "json.renorm"),
      },
      trackRunningStats: checkBoolean("json.trackRunningStats", j.trackRunningStats, true),
      weight: per("weight", scale),
      bias: per("bias", center),
      runningMean: per("runningMean", buffers),
      runningVar: per("runningVar", buffers),
      numBatchesTracked: counter as number,
    };
  }

  /** @internal restores a module created from parsed JSON's options */
  restore(j: Omit<ParsedJSON, "options">): this {
    if (j.weight) this.weight!.set(j.weight);
    if (j.bias) this.bias!.set(j.bias);
    if (j.runningMean) this.runningMean!.set(j.runningMean);
    if (j.runningVar) this.runningVar!.set(j.runningVar);
    this.tracking = j.trackRunningStats;
    this.numBatchesTracked = j.numBatchesTracked;
    return this;
  }

  /** Adds this backward's gradients to the accumulated ones (resolved `wg`/`bg`), or starts them. */
  private accumulate(wg: Operand | null, bg: Operand | null, dweight: ArrayLike<number>, dbias: ArrayLike<number>): void {
    const memory = this.engine.memory;
    const add = (to: Operand, d: ArrayLike<number>): void => {
      const sum = memory.floats(to, this.numFeatures);
      for (let i = 0; i < d.length; i++) sum[i] += d[i];
    };
    // a module without weight (bias) has no gradient for it, as a Keras layer without scale (center)
    if (this.scale) {
      if (wg === null) this.weightGrad = Float32Array.from(dweight);
      else add(wg, dweight);
    }
    if (this.center) {
      if (bg === null) this.biasGrad = Float32Array.from(dbias);
      else add(bg, dbias);
    }
  }

  /** A copy of a resolved per-channel array (null stays null). */
  private copyOf(op: Operand | null): Float32Array | null {
    return op === null ? null : this.engine.memory.floats(op, this.numFeatures).slice();
  }

  /** weight, bias and the running statistics are public and replaceable: check and resolve them per call. */
  private params(): Params {
    const memory = this.engine.memory;
    const c = this.numFeatures;
    const p: Params = { weight: null, bias: null, running: null };
    if (this.scale) p.weight = checkFloat32Array("weight", this.weight, c, memory);
    if (this.center) p.bias = checkFloat32Array("bias", this.bias, c, memory);
    if (this.buffers) {
      p.running = {
        mean: checkFloat32Array("runningMean", this.runningMean, c, memory),
        variance: checkFloat32Array("runningVar", this.runningVar, c, memory),
        biased: this.runningVariance === "biased",
      };
    }
    return p;
  }
}
