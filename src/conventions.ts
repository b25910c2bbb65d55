// Other frameworks' BatchNorm conventions for the BatchNorm module: a Keras / TensorFlow.js layer's
// config and weights, and an ONNX BatchNormalization node's attributes and inputs, read into module
// options and state, and written back. Both keep the running statistics as
// `moving = m * moving + (1 - m) * batch` with the biased batch variance (m the keep factor: our
// momentum is 1 - m, and runningVariance 'biased').
import { floatsFromJSON } from "./json.js";
import type { BatchNormModuleOptions, FloatList } from "./module.js";
import { checkKeys, describe, type Layout } from "./validate.js";

/** A Keras / TensorFlow.js BatchNormalization layer: its config and its weights by name. */
export interface KerasBatchNormalization {
  /**
   * The layer's config: TensorFlow.js's `layer.getConfig()` (camelCase) or the `config` of a Keras
   * model JSON entry (snake_case; the `{ class_name, config }` wrapper is accepted too). Read:
   * `axis` (-1 or the last axis: channels-last; 1: channels-first; a number or a one-element list),
   * `momentum` (default 0.99), `epsilon` (default 1e-3), `center`, `scale` (default true), and the
   * batch input shape when present (to tell the last axis); other keys are kept for toKeras.
   */
  config: Record<string, unknown>;
  /**
   * Weights by name: `gamma` (with scale), `beta` (with center), `moving_mean`, `moving_variance`,
   * each with or without a layer prefix and a `:0` suffix (`bn1/gamma`, `bn1/gamma:0`), as
   * Float32Arrays or arrays of numbers.
   */
  weights: Record<string, FloatList>;
}

/** What toKeras returns: the config (the imported one, unchanged, when the module came from fromKeras) and copies of the weights. */
export interface KerasBatchNormalizationOutput {
  config: Record<string, unknown>;
  weights: Record<string, Float32Array>;
}

/** An ONNX BatchNormalization node (opset 15): its attributes and its per-channel inputs. */
export interface OnnxBatchNormalization {
  /** `epsilon` (default 1e-5), `momentum` (keep factor, default 0.9), `training_mode` (0 or 1, default 0). */
  attributes?: { epsilon?: number; momentum?: number; training_mode?: number };
  scale: FloatList;
  B: FloatList;
  input_mean: FloatList;
  input_var: FloatList;
}

/** What toOnnx returns: the node's attributes and copies of its per-channel inputs. */
export interface OnnxBatchNormalizationOutput {
  attributes: { epsilon: number; momentum: number; training_mode: number };
  scale: Float32Array;
  B: Float32Array;
  input_mean: Float32Array;
  input_var: Float32Array;
}

/** Where a module came from, so that exporting it back gives what was imported. */
export type Origin =
  | { kind: "keras"; config: Record<string, unknown>; prefix: string; suffix: string }
  | { kind: "onnx"; attributes: Record<string, number> };

/** A module to create: options, state and mode. */
export interface Imported {
  numFeatures: number;
  options: BatchNormModuleOptions;
  weight: Float64Array | null;
  bias: Float64Array | null;
  runningMean: Float64Array;
  runningVar: Float64Array;
  training: boolean;
  origin: Origin;
}

/** The module state the exports read (the BatchNorm module satisfies it). */
interface State {
  numFeatures: number;
  eps: number;
  momentum: number | null;
  scale: boolean;
  center: boolean;
  layout: Layout;
  training: boolean;
  stateDict(): { weight?: Float32Array; bias?: Float32Array; running_mean?: Float32Array; running_var?: Float32Array };
}

const KERAS_WEIGHTS = ["gamma", "beta", "moving_mean", "moving_variance"] as const;
const ONNX_KEYS: ReadonlySet<string> = new Set(["attributes", "scale", "B", "input_mean", "input_var"]);
const ONNX_ATTRIBUTES: ReadonlySet<string> = new Set(["epsilon", "momentum", "training_mode"]);

/** A config value under its camelCase or snake_case name. */
function read(config: Record<string, unknown>, camel: string): unknown {
  return config[camel] ?? config[camel.replace(/[A-Z]/g, (u) => `_${u.toLowerCase()}`)];
}

function number(name: string, v: unknown, fallback: number, ok: (x: number) => boolean, range: string): number {
  if (v === undefined || v === null) return fallback;
  if (typeof v !== "number" || !ok(v)) throw new RangeError(`${name}: expected ${range}, got ${describe(v)}`);
  return v;
}

function flag(name: string, v: unknown): boolean {
  if (v === undefined || v === null) return true;
  if (typeof v !== "boolean") throw new TypeError(`${name}: expected a boolean, got ${describe(v)}`);
  return v;
}

/** The layout Keras's `axis` means: 1 channels-first, -1 (or the last axis) channels-last. */
function kerasLayout(config: Record<string, unknown>): Layout {
  let axis = read(config, "axis");
  if (Array.isArray(axis) && axis.length === 1) axis = axis[0];
  if (!Number.isInteger(axis)) throw new TypeError(`config.axis: expected an integer or a one-element list, got ${describe(axis)}`);
  const shape = read(config, "batchInputShape");
  const rank = Array.isArray(shape) ? shape.length : null;
  const a = axis as number;
  if (a === -1 || (rank !== null && a === rank - 1) || (rank === null && a >= 2)) return "channels-last";
  if (a === 1) return "channels-first";
  throw new RangeError(
    `config.axis: expected 1 (channels-first) or -1 / the last axis (channels-last), got ${a}${rank !== null ? ` for inputs of rank ${rank}` : ""}`,
  );
}

/** Reads a Keras / TensorFlow.js BatchNormalization layer (see {@link KerasBatchNormalization}). */
export function fromKeras(input: KerasBatchNormalization): Imported {
  if (input === null || typeof input !== "object") throw new TypeError(`keras: expected { config, weights }, got ${describe(input)}`);
  checkKeys(input, new Set(["config", "weights"]), "keras");
  let config = input.config as Record<string, unknown>;
  if (config === null || typeof config !== "object") throw new TypeError(`config: expected an object, got ${describe(config)}`);
  const inner = read(config, "className") === "BatchNormalization" ? config.config : undefined;
  if (inner !== null && typeof inner === "object") config = inner as Record<string, unknown>;
  const layout = kerasLayout(config);
  const m = number("config.momentum", read(config, "momentum"), 0.99, (v) => v >= 0 && v <= 1, "a number in [0, 1]");
  const eps = number("config.epsilon", read(config, "epsilon"), 1e-3, (v) => v > 0 && Number.isFinite(v), "a finite number > 0");
  const center = flag("config.center", read(config, "center"));
  const scale = flag("config.scale", read(config, "scale"));

  const weights = input.weights;
  if (weights === null || typeof weights !== "object") throw new TypeError(`weights: expected an object of arrays by name, got ${describe(weights)}`);
  const found = new Map<string, unknown>();
  let prefix = "";
  let suffix = "";
  for (const [name, v] of Object.entries(weights)) {
    const match = /^(.*\/)?(gamma|beta|moving_mean|moving_variance)(:0)?$/.exec(name);
    if (!match) throw new TypeError(`weights: unexpected name '${name}' (expected gamma, beta, moving_mean, moving_variance, with or without a 'layer/' prefix)`);
    if (found.has(match[2])) throw new TypeError(`weights: two values for ${match[2]} ('${name}')`);
    found.set(match[2], v);
    prefix = match[1] ?? "";
    suffix = match[3] ?? "";
  }
  const expected = new Set<string>(KERAS_WEIGHTS.filter((k) => (k === "gamma" ? scale : k === "beta" ? center : true)));
  for (const k of KERAS_WEIGHTS) {
    if (expected.has(k) && !found.has(k)) throw new TypeError(`weights: missing ${k}`);
    if (!expected.has(k) && found.has(k)) throw new TypeError(`weights: unexpected ${k} (config.${k === "gamma" ? "scale" : "center"} is false)`);
  }
  const mean = found.get("moving_mean") as FloatList;
  const c = mean instanceof Float32Array || Array.isArray(mean) ? mean.length : 0;
  if (c === 0) throw new TypeError(`weights.moving_mean: expected a Float32Array or an array of numbers, one per channel, got ${describe(mean)}`);
  const get = (k: string): Float64Array | null => (expected.has(k) ? floatsFromJSON(`weights.${k}`, found.get(k), c) : null);
  return {
    numFeatures: c,
    options: { eps, momentum: 1 - m, scale, center, layout, runningVariance: "biased" },
    weight: get("gamma"),
    bias: get("beta"),
    runningMean: get("moving_mean")!,
    runningVar: get("moving_variance")!,
    training: true,
    origin: { kind: "keras", config: structuredClone(input.config), prefix, suffix },
  };
}

/** The keep factor a module's momentum stands for (Keras and ONNX have no cumulative average). */
function keep(module: State, to: string): number {
  if (module.momentum === null) throw new TypeError(`${to}: momentum null (a cumulative average) has no ${to === "toKeras" ? "Keras" : "ONNX"} equivalent`);
  return 1 - module.momentum;
}

/** Running statistics of a module that must have them. */
function running(sd: ReturnType<State["stateDict"]>, to: string): { mean: Float32Array; variance: Float32Array } {
  if (!sd.running_mean || !sd.running_var) throw new TypeError(`${to}: the module has no running statistics (trackRunningStats: false)`);
  return { mean: sd.running_mean, variance: sd.running_var };
}

/** A module as a Keras / TensorFlow.js layer (see {@link KerasBatchNormalizationOutput}). */
export function toKeras(module: State, origin: Origin | null): KerasBatchNormalizationOutput {
  const momentum = keep(module, "toKeras");
  const sd = module.stateDict();
  const stats = running(sd, "toKeras");
  const from = origin?.kind === "keras" ? origin : null;
  const config = from
    ? structuredClone(from.config)
    : { axis: module.layout === "channels-last" ? -1 : 1, momentum, epsilon: module.eps, center: module.center, scale: module.scale };
  const name = (k: string) => `${from?.prefix ?? ""}${k}${from?.suffix ?? ""}`;
  const weights: Record<string, Float32Array> = {};
  if (sd.weight) weights[name("gamma")] = sd.weight;
  if (sd.bias) weights[name("beta")] = sd.bias;
  weights[name("moving_mean")] = stats.mean;
  weights[name("moving_variance")] = stats.variance;
  return { config, weights };
}

/** Reads an ONNX BatchNormalization node (see {@link OnnxBatchNormalization}). */
export function fromOnnx(input: OnnxBatchNormalization): Imported {
  if (input === null || typeof input !== "object") throw new TypeError(`onnx: expected { attributes, scale, B, input_mean, input_var }, got ${describe(input)}`);
  checkKeys(input, ONNX_KEYS, "onnx");
  const attributes = (input.attributes ?? {}) as Record<string, unknown>;
  if (attributes === null || typeof attributes !== "object") throw new TypeError(`attributes: expected an object, got ${describe(attributes)}`);
  checkKeys(attributes, ONNX_ATTRIBUTES, "attributes", "attributes.", "attribute");
  const eps = number("attributes.epsilon", attributes.epsilon, 1e-5, (v) => v > 0 && Number.isFinite(v), "a finite number > 0");
  const m = number("attributes.momentum", attributes.momentum, 0.9, (v) => v >= 0 && v <= 1, "a number in [0, 1]");
  const mode = number("attributes.training_mode", attributes.training_mode, 0, (v) => v === 0 || v === 1, "0 or 1");
  const scale = input.scale;
  const c = scale instanceof Float32Array || Array.isArray(scale) ? scale.length : 0;
  if (c === 0) throw new TypeError(`scale: expected a Float32Array or an array of numbers, one per channel, got ${describe(scale)}`);
  return {
    numFeatures: c,
    options: { eps, momentum: 1 - m, layout: "channels-first", runningVariance: "biased" },
    weight: floatsFromJSON("scale", scale, c),
    bias: floatsFromJSON("B", input.B, c),
    runningMean: floatsFromJSON("input_mean", input.input_mean, c),
    runningVar: floatsFromJSON("input_var", input.input_var, c),
    training: mode === 1,
    origin: { kind: "onnx", attributes: { ...(attributes as Record<string, number>) } },
  };
}

/** A module as an ONNX BatchNormalization node (see {@link OnnxBatchNormalizationOutput}). */
export function toOnnx(module: State, origin: Origin | null): OnnxBatchNormalizationOutput {
  const momentum = keep(module, "toOnnx");
  const sd = module.stateDict();
  const stats = running(sd, "toOnnx");
  const from = origin?.kind === "onnx" ? origin.attributes : {};
  return {
    // the imported attributes where the module still means them (ONNX stores them as float32)
    attributes: {
      epsilon: from.epsilon ?? module.eps,
      momentum: from.momentum ?? momentum,
      training_mode: module.training ? 1 : 0,
    },
    scale: sd.weight ?? new Float32Array(module.numFeatures).fill(1),
    B: sd.bias ?? new Float32Array(module.numFeatures),
    input_mean: stats.mean,
    input_var: stats.variance,
  };
}
