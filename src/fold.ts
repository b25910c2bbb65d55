// foldBatchNorm: folds an inference-mode BatchNorm into the Linear or Conv before it, so that the BN
// disappears from the graph. PyTorch's torch.nn.utils.fusion.fuse_conv_bn_weights and
// fuse_linear_bn_weights: with s = bn_weight / sqrt(running_var + eps) per channel,
//   W' = W * s   along the output-channel axis (0; 1 for ConvTranspose weights [in, out, ...])
//   b' = (b - running_mean) * s + bn_bias
// so that layer'(x) = BN_eval(layer(x)). Computed in float64 and rounded once to float32; PyTorch
// computes in the weights' float32.
import { WasmMemory, WasmTensor } from "./memory.js";
import { BatchNorm } from "./module.js";
import { Tensor, checkBoolean, checkChannels, checkEps, checkKeys, checkShape, checkTensor, describe } from "./validate.js";

/** The Linear or Conv layer before the BatchNorm, as PyTorch stores it. */
export interface FoldLayer {
  /**
   * Weight, row-major in PyTorch's layout: Linear `[out, in]`, Conv `[out, in / groups, ...kernel]`,
   * ConvTranspose `[in, out, ...kernel]` (with `transposed: true`).
   */
  weight: Tensor;
  /** Shape of `weight`: at least 1 dimension (2 when transposed); its product is weight's length. */
  shape: readonly number[];
  /** One per output channel; null or omitted: zeros (PyTorch's `bias=False`). */
  bias?: Tensor | null;
  /**
   * The weight is a ConvTranspose's, `[in, out, ...kernel]` with groups = 1: the output channels are
   * axis 1. Default false (axis 0). PyTorch's argument is `transpose`.
   */
  transposed?: boolean;
}

/** Per-channel values of a plain-object BatchNorm: a Float32Array, a WasmTensor, or numbers (JSON). */
export type FoldValues = Tensor | readonly number[];

/**
 * A BatchNorm given by its parameters under PyTorch's state_dict keys (e.g. `bn.state_dict()` dumped
 * to JSON), plus `eps`. All arrays have one value per channel.
 */
export interface FoldBatchNormParams {
  /** gamma; null or omitted (`affine=False`): ones. */
  weight?: FoldValues | null;
  /** beta; null or omitted: zeros. */
  bias?: FoldValues | null;
  /** Required: the running mean. */
  running_mean: FoldValues;
  /** Required: the running (unbiased) variance. */
  running_var: FoldValues;
  /** Accepted so a whole state_dict can be passed; not used. */
  num_batches_tracked?: number;
  /** Added to running_var; a finite number > 0, default 1e-5 (PyTorch's default; it is not in the state_dict). */
  eps?: number;
}

/** The folded layer's parameters: new arrays, the weight in the input weight's shape and layout. */
export interface FoldResult {
  weight: Float32Array;
  /** One per output channel (also when the layer had no bias). */
  bias: Float32Array;
}

// A misspelt key (PyTorch's `transpose`, `runningMean`) would be ignored silently: checkKeys rejects it.
const LAYER_KEYS: ReadonlySet<string> = new Set(["weight", "shape", "bias", "transposed"]);
const PARAMS_KEYS: ReadonlySet<string> = new Set(["weight", "bias", "running_mean", "running_var", "num_batches_tracked", "eps"]);

/** A BatchNorm's per-channel array: a Float32Array, this backend's WasmTensor or a number[], of length `c` when given. */
function bnValues(name: string, v: unknown, c: number | null, memory: WasmMemory): ArrayLike<number> {
  let a: ArrayLike<number>;
  if (v === undefined || v === null) throw new TypeError(`${name}: required (a BatchNorm folds with its running statistics)`);
  if (Array.isArray(v)) {
    const i = v.findIndex((e) => typeof e !== "number");
    if (i >= 0) throw new TypeError(`${name}: expected numbers, got ${describe(v[i])} at index ${i}`);
    a = v;
  } else if (v instanceof Float32Array || v instanceof WasmTensor) {
    a = memory.floats(checkTensor(name, v, memory), v.length);
  } else {
    throw new TypeError(`${name}: expected a Float32Array, WasmTensor or number[], got ${describe(v)}`);
  }
  if (c !== null && a.length !== c) throw new RangeError(`${name}: expected length ${c} (one per channel), got ${a.length}`);
  return a;
}

/** bnValues for weight and bias: null or undefined stand for ones and zeros. */
function bnOptional(name: string, v: unknown, c: number, memory: WasmMemory): ArrayLike<number> | null {
  return v === undefined || v === null ? null : bnValues(name, v, c, memory);
}

interface BnParams {
  c: number;
  /** How the channel count is known, for the axis error. */
  source: string;
  weight: ArrayLike<number> | null;
  bias: ArrayLike<number> | null;
  mean: ArrayLike<number>;
  variance: ArrayLike<number>;
  eps: number;
}

/** The BatchNorm's parameters, checked: a module (its public fields) or a plain object with PyTorch's keys. */
function bnParams(layer: unknown, memory: WasmMemory): BnParams {
  if (layer instanceof BatchNorm) {
    if (layer.runningMean === null && layer.runningVar === null) {
      throw new TypeError(
        "layer: this BatchNorm has no running statistics (trackRunningStats: false), so it normalizes with each " +
          "batch's own statistics in every mode: there is no fixed scale and shift to fold",
      );
    }
    const c = layer.numFeatures;
    return {
      c,
      source: "numFeatures",
      weight: bnOptional("layer.weight", layer.weight, c, memory),
      bias: bnOptional("layer.bias", layer.bias, c, memory),
      mean: bnValues("layer.runningMean", layer.runningMean, c, memory),
      variance: bnValues("layer.runningVar", layer.runningVar, c, memory),
      eps: checkEps(layer.eps, "layer.eps"),
    };
  }
  if (layer === null || typeof layer !== "object") {
    throw new TypeError(`layer: expected a BatchNorm module or { running_mean, running_var, weight?, bias?, eps? }, got ${describe(layer)}`);
  }
  checkKeys(layer, PARAMS_KEYS, "layer", "layer.", "key");
  const p = layer as Record<string, unknown>;
  const mean = bnValues("layer.running_mean", p.running_mean, null, memory);
  const c = mean.length;
  return {
    c,
    source: "layer.running_mean's length",
    weight: bnOptional("layer.weight", p.weight, c, memory),
    bias: bnOptional("layer.bias", p.bias, c, memory),
    mean,
    variance: bnValues("layer.running_var", p.running_var, c, memory),
    eps: checkEps(p.eps, "layer.eps"),
  };
}

/**
 * Folds an inference-mode BatchNorm into the Linear or Conv layer before it (PyTorch's
 * `torch.nn.utils.fusion.fuse_conv_bn_weights` / `fuse_linear_bn_weights`): the returned weight and
 * bias make the layer compute `BN(layer(x))` with BN in eval mode. Per output channel,
 * `s = bn_weight / sqrt(running_var + eps)`, `W' = W * s` and `b' = (b - running_mean) * s + bn_bias`;
 * a missing layer bias is zeros, a missing BN weight ones and a missing BN bias zeros.
 *
 * Computed in float64 from the float32 inputs and rounded once to float32, so each value is within
 * about half a float32 ulp of the exact answer; PyTorch computes in float32 (several roundings, and a
 * cancelling `b - running_mean` loses more). A module is folded with its running statistics and its own
 * eps whatever its training flag. The inputs are not changed.
 *
 * @param memory The backend's memory (WasmTensor arguments must live in it).
 * @param conv The layer: weight, shape, bias (optional), transposed (default false); see {@link FoldLayer}.
 * @param layer A BatchNorm module with running statistics, or its parameters under PyTorch's keys
 *   ({@link FoldBatchNormParams}, eps default 1e-5).
 * @returns New Float32Arrays: the weight (same shape and layout) and one bias per output channel.
 * @throws TypeError for arguments of the wrong type, unknown keys, missing running statistics (a
 *   module created with trackRunningStats: false has none; one switched off later keeps them, as in
 *   PyTorch, and folds with them).
 * @throws RangeError for a shape that is not at least 1 (transposed: 2) non-negative integers whose
 *   product is the weight's length, an output-channel axis whose size is not the BatchNorm's channel
 *   count, a bias or BatchNorm array of another length, or an eps that is not a finite number > 0.
 * @example
 * ```ts
 * // Conv2d(3, 2, 1) then BatchNorm2d(2) in eval mode, the BN from a state_dict dumped to JSON
 * const { weight, bias } = bn.foldBatchNorm(
 *   { weight: Float32Array.of(1, 0, 0, 0, 1, 0), shape: [2, 3, 1, 1], bias: Float32Array.of(0.5, 0) },
 *   { weight: [2, 1], bias: [0, 1], running_mean: [0.5, 1], running_var: [4, 1], eps: 1e-5 },
 * );
 * ```
 */
export function foldBatchNorm(memory: WasmMemory, conv: FoldLayer, layer: BatchNorm | FoldBatchNormParams): FoldResult {
  if (conv === null || typeof conv !== "object") {
    throw new TypeError(`conv: expected an object { weight, shape, bias?, transposed? }, got ${describe(conv)}`);
  }
  checkKeys(conv, LAYER_KEYS, "conv", "conv.", "key");
  const transposed = checkBoolean("conv.transposed", conv.transposed, false);
  const weightOp = checkTensor("conv.weight", conv.weight, memory);
  const form = transposed ? "[in, out, ...kernel]" : "[out, ...]";
  const shape = checkShape("conv.shape", conv.shape, transposed ? 2 : 1, form, "conv.weight", conv.weight.length);
  const bn = bnParams(layer, memory);
  const axis = transposed ? 1 : 0;
  const c = bn.c;
  if (shape[axis] !== c) {
    throw new RangeError(
      `conv.shape: [${shape.join(", ")}] has ${shape[axis]} output channels on axis ${axis} (${form}) but the BatchNorm has ${c} (${bn.source})`,
    );
  }
  const checkedBias = checkChannels("conv.bias", conv.bias, c, memory);
  const convBias = checkedBias === null ? null : memory.floats(checkedBias, c);

  const s = new Float64Array(c);
  const bias = new Float32Array(c);
  for (let o = 0; o < c; o++) {
    s[o] = (bn.weight ? bn.weight[o] : 1) / Math.sqrt(bn.variance[o] + bn.eps);
    bias[o] = ((convBias ? convBias[o] : 0) - bn.mean[o]) * s[o] + (bn.bias ? bn.bias[o] : 0);
  }
  const w = memory.floats(weightOp, conv.weight.length);
  const weight = new Float32Array(w.length);
  // the weight as [outer, c, inner]: outer is 1 (axis 0) or the input channels (transposed)
  const outer = axis === 0 ? 1 : shape[0];
  const inner = shape.slice(axis + 1).reduce((p, d) => p * d, 1);
  for (let a = 0, k = 0; a < outer; a++) {
    for (let o = 0; o < c; o++) {
      for (let j = 0; j < inner; j++, k++) weight[k] = w[k] * s[o];
    }
  }
  return { weight, bias };
}
