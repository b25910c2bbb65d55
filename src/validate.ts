// Argument checks, done once at the API boundary: each throws a TypeError or RangeError that names
// the argument, what was expected and what was given, before anything is allocated or mutated.
// Tensors are resolved here to where their data is (engine.ts's Operand): a Float32Array that views
// the backend's own wasm memory becomes an address, so a call that grows memory cannot detach it.
import type { Operand } from "./engine.js";
import { WasmMemory, WasmTensor } from "./memory.js";

/**
 * Data the API accepts: a `Float32Array` (plain, or a view of a live {@link WasmTensor}'s memory, such
 * as `t.data` or a subarray of it), or a `WasmTensor` of the same backend.
 */
export type Tensor = Float32Array | WasmTensor;

/**
 * Where the channel axis is: `'channels-first'` (`[N, C, ...spatial]`, PyTorch's NCHW) or
 * `'channels-last'` (`[N, ...spatial, C]`, NHWC).
 */
export type Layout = "channels-first" | "channels-last";

/** Where the channel axis is and how the kernels walk the data. */
export interface Geometry {
  shape: readonly number[];
  length: number;
  n: number;
  c: number;
  /** Spatial positions per image (channels-first) or per row (channels-last: 1). */
  s: number;
  /** Values per channel: N * spatial. */
  count: number;
  /** Memory is [count, C] (channels-last, or channels-first without spatial dims): row kernels. */
  rows: boolean;
}

/**
 * Most channels a call, a module or RunningStats may have. Each call keeps about 90 bytes of
 * per-channel scratch in wasm memory, and 2^24 channels (1.5 GiB of it) leave room for data in 4 GiB.
 */
export const MAX_CHANNELS = 2 ** 24;

export function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return `Array(${v.length})`;
  if (ArrayBuffer.isView(v)) return `${v.constructor.name}(${(v as Float32Array).length})`;
  if (v instanceof WasmTensor) return `WasmTensor(${v.length})${v.freed ? " (freed)" : ""}`;
  if (typeof v === "object") return v.constructor?.name ?? "object";
  if (typeof v === "number") return String(v);
  if (typeof v === "string") return JSON.stringify(v);
  return typeof v;
}

/** How to turn a plain Array or another typed array into what the API takes. */
function conversionHint(name: string, v: unknown): string {
  return Array.isArray(v) || (ArrayBuffer.isView(v) && !(v instanceof DataView)) ? `; use Float32Array.from(${name})` : "";
}

/**
 * A Float32Array or WasmTensor of this backend, resolved to its data: a wasm address for a WasmTensor
 * or a view inside a live one, else the Float32Array itself (staged by chunks).
 */
export function checkTensor(name: string, v: unknown, memory: WasmMemory): Operand {
  if (v instanceof Float32Array) return checkView(name, v, memory);
  if (v instanceof WasmTensor) {
    if (v.freed) throw new TypeError(`${name}: expected a live WasmTensor, got a freed one`);
    if (!v.belongsTo(memory)) throw new TypeError(`${name}: the WasmTensor belongs to another backend's memory`);
    return v.ptr;
  }
  throw new TypeError(`${name}: expected a Float32Array or WasmTensor, got ${describe(v)}${conversionHint(name, v)}`);
}

/**
 * A Float32Array: its address when it views this backend's memory (it must lie inside a live
 * WasmTensor), else itself. A view of a buffer the memory had before it grew is detached (a
 * TypeError), unless the memory is shared (threads), where such views stay valid.
 */
export function checkView(name: string, v: Float32Array, memory: WasmMemory): Operand {
  const buffer = v.buffer;
  if (buffer !== memory.buffer) {
    if (!memory.grewFrom(buffer)) return v;
    if (!memory.shared) {
      throw new TypeError(`${name}: a view of wasm memory that has grown since it was taken (detached); re-read WasmTensor.data after calls that may allocate`);
    }
  }
  if (!memory.inTensor(v.byteOffset, v.byteLength)) {
    throw new TypeError(`${name}: a Float32Array over this backend's wasm memory must lie inside a live WasmTensor (freed, or not from alloc())`);
  }
  return v.byteOffset;
}

/** A Float32Array of `length` floats (a module's parameters, buffers and gradients), resolved as checkTensor does. */
export function checkFloat32Array(name: string, v: unknown, length: number, memory: WasmMemory): Operand {
  if (!(v instanceof Float32Array)) throw new TypeError(`${name}: expected a Float32Array, got ${describe(v)}${conversionHint(name, v)}`);
  const op = checkView(name, v, memory);
  if (v.length !== length) throw new RangeError(`${name}: expected length ${length}, got ${v.length}`);
  return op;
}

/** An optional tensor of `length` floats, or undefined/null; `unit` says what the length counts. */
function checkOptional(name: string, v: unknown, length: number, unit: string, memory: WasmMemory): Operand | null {
  if (v === undefined || v === null) return null;
  const op = checkTensor(name, v, memory);
  const got = (v as Tensor).length;
  if (got !== length) throw new RangeError(`${name}: expected length ${length}${unit}, got ${got}`);
  return op;
}

/** An optional per-channel array (length C), or undefined/null. */
export function checkChannels(name: string, v: unknown, c: number, memory: WasmMemory): Operand | null {
  return checkOptional(name, v, c, " (one per channel)", memory);
}

/** An optional destination the size of the input, or undefined/null. */
export function checkOut(name: string, v: unknown, length: number, memory: WasmMemory): Operand | null {
  return checkOptional(name, v, length, "", memory);
}

/**
 * `out` (of `length` floats) against an input it must not partly overlap: being that very input
 * (same memory, same length) is allowed when `identity` is; any other shared byte is a RangeError.
 * Memory is a wasm address range, or a byte range of a Float32Array's ArrayBuffer.
 */
export function checkDisjoint(out: Operand, length: number, name: string, op: Operand | null, opLength: number, identity: boolean): void {
  if (op === null) return;
  const wasm = typeof out === "number";
  if (wasm !== (typeof op === "number") || (!wasm && out.buffer !== (op as Float32Array).buffer)) return;
  const a0 = wasm ? out : out.byteOffset;
  const b0 = typeof op === "number" ? op : op.byteOffset;
  const a1 = a0 + 4 * length;
  const b1 = b0 + 4 * opLength;
  if (a1 <= b0 || b1 <= a0 || (identity && a0 === b0 && a1 === b1)) return;
  throw new RangeError(
    identity
      ? `out: overlaps ${name} without being ${name} (pass ${name} itself to work in place, or memory that does not overlap it)`
      : `out: shares memory with ${name}`,
  );
}

export function checkLayout(v: unknown, name = "layout"): Layout {
  if (v === undefined) return "channels-first";
  if (v === "channels-first" || v === "channels-last") return v;
  throw new TypeError(`${name}: expected 'channels-first' or 'channels-last', got ${describe(v)}`);
}

/** A channel count (numFeatures): a positive integer up to MAX_CHANNELS. */
export function checkNumFeatures(name: string, v: unknown): number {
  if (!Number.isSafeInteger(v) || (v as number) < 1) throw new RangeError(`${name}: expected a positive integer, got ${describe(v)}`);
  if ((v as number) > MAX_CHANNELS) throw new RangeError(`${name}: ${v} channels, more than the ${MAX_CHANNELS} (2^24) supported`);
  return v as number;
}

/**
 * Argument `arg`: at least `minDims` non-negative integers (`form` shows the axes) whose product is
 * `length`, the length of tensor `name`.
 */
export function checkShape(arg: string, v: unknown, minDims: number, form: string, name: string, length: number): number[] {
  if (!Array.isArray(v)) throw new TypeError(`${arg}: expected an array of dimensions, got ${describe(v)}`);
  const shape = v as number[];
  if (shape.length < minDims) {
    throw new RangeError(`${arg}: expected at least ${minDims} dimension${minDims === 1 ? "" : "s"} (${form}), got [${shape.join(", ")}]`);
  }
  let product = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new RangeError(`${arg}: expected non-negative integers, got [${shape.join(", ")}]`);
    }
    product *= d;
  }
  if (product !== length) {
    throw new RangeError(`${arg}: [${shape.join(", ")}] holds ${product} values but ${name} has length ${length}`);
  }
  return shape;
}

/** Shape in memory order; the channel axis is 1 (channels-first) or last (channels-last). */
export function geometry(shapeArg: unknown, layout: Layout, length: number, name = "x"): Geometry {
  const shape = checkShape("shape", shapeArg, 2, "[N, C, ...]", name, length);
  const n = shape[0];
  const c = layout === "channels-last" ? shape[shape.length - 1] : shape[1];
  if (c > MAX_CHANNELS) {
    throw new RangeError(`shape: [${shape.join(", ")}] has ${c} channels, more than the ${MAX_CHANNELS} (2^24) supported`);
  }
  const count = c === 0 ? 0 : length / c;
  const s = n === 0 ? 0 : count / n;
  return { shape: shape.slice(), length, n, c, s: layout === "channels-last" ? 1 : s, count, rows: layout === "channels-last" || s === 1 };
}

export function checkEps(v: unknown, name = "eps"): number {
  if (v === undefined) return 1e-5;
  if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
    throw new RangeError(`${name}: expected a finite number > 0, got ${describe(v)}`);
  }
  return v;
}

export function checkMomentum(v: unknown, allowNull: boolean, name = "momentum"): number | null {
  if (v === undefined) return 0.1;
  if (v === null && allowNull) return null;
  if (typeof v !== "number" || !(v >= 0 && v <= 1)) {
    throw new RangeError(`${name}: expected a number in [0, 1]${allowNull ? " or null" : ""}, got ${describe(v)}`);
  }
  return v;
}

/** How running statistics keep the variance: `'unbiased'` (PyTorch, the default) or `'biased'` (Keras, ONNX). */
export type RunningVariance = "unbiased" | "biased";

export function checkRunningVariance(v: unknown, name = "runningVariance"): RunningVariance {
  if (v === undefined) return "unbiased";
  if (v === "unbiased" || v === "biased") return v;
  throw new TypeError(`${name}: expected 'unbiased' or 'biased', got ${describe(v)}`);
}

export function checkBoolean(name: string, v: unknown, fallback: boolean): boolean {
  if (v === undefined) return fallback;
  if (typeof v !== "boolean") throw new TypeError(`${name}: expected a boolean, got ${describe(v)}`);
  return v;
}

/** torch's rule: batch statistics need more than one value per channel; `where` prefixes the message. */
export function checkBatchStats(g: Geometry, where = ""): void {
  if (g.count === 1) {
    throw new RangeError(
      `${where}Expected more than 1 value per channel when training, got input size [${g.shape.join(", ")}]`,
    );
  }
}

/** A ghost batch size: an integer >= 1, or undefined/null for none. */
export function checkVirtualBatchSize(v: unknown, name = "virtualBatchSize"): number | null {
  if (v === undefined || v === null) return null;
  if (!Number.isSafeInteger(v) || (v as number) < 1) throw new RangeError(`${name}: expected an integer >= 1 or null, got ${describe(v)}`);
  return v as number;
}

/** torch's rule for every ghost batch (ghost.ts's chunks) of a call with batch statistics; one chunk is the whole batch. */
export function checkChunkStats(chunks: readonly { g: Geometry }[]): void {
  const n = chunks.length;
  chunks.forEach(({ g }, k) => checkBatchStats(g, n === 1 ? "" : `virtualBatchSize: chunk ${k + 1} of ${n}: `));
}

/** Per-channel values of each ghost batch (`chunks` * C, chunk-major), or undefined/null. */
export function checkChunkChannels(name: string, v: unknown, c: number, chunks: number, size: number | null, memory: WasmMemory): Operand | null {
  return chunks === 1 ? checkChannels(name, v, c, memory) : checkOptional(name, v, c * chunks, ` (one per channel and chunk: ${chunks} chunks of virtualBatchSize ${size})`, memory);
}

/**
 * Batch renormalization's settings (the BatchNorm module's `renorm` option; Ioffe 2017): r is clipped
 * to [1 / rMax, rMax] and d to [-dMax, dMax]; while `numBatchesTracked < warmupSteps`, r = 1 and d = 0
 * (plain batch normalization). `{ rMax: 1, dMax: 0 }` is plain batch normalization throughout.
 * @example
 * const layer = new bn.BatchNorm(64, { renorm: { rMax: 3, dMax: 5, warmupSteps: 1000 } });
 */
export interface BatchRenormOptions {
  /** Bound on r: a finite number >= 1. The paper raises it from 1 to 3 during training. */
  rMax: number;
  /** Bound on |d|: a finite number >= 0. The paper raises it from 0 to 5. */
  dMax: number;
  /** Training batches (counted by numBatchesTracked) that run as plain batch normalization first: an integer >= 0. Default `0`. */
  warmupSteps?: number;
}

const RENORM_KEYS: ReadonlySet<string> = new Set(["rMax", "dMax", "warmupSteps"]);

/** `{ rMax >= 1, dMax >= 0, warmupSteps = 0 }` (a frozen copy), or undefined/null for none; finite, so JSON holds them. */
export function checkRenorm(v: unknown, name = "renorm"): Readonly<Required<BatchRenormOptions>> | null {
  if (v === undefined || v === null) return null;
  checkKeys(v, RENORM_KEYS, name, `${name}.`);
  const r = v as Record<string, unknown>;
  if (typeof r.rMax !== "number" || !(r.rMax >= 1 && r.rMax < Infinity)) {
    throw new RangeError(`${name}.rMax: expected a finite number >= 1, got ${describe(r.rMax)}`);
  }
  if (typeof r.dMax !== "number" || !(r.dMax >= 0 && r.dMax < Infinity)) {
    throw new RangeError(`${name}.dMax: expected a finite number >= 0, got ${describe(r.dMax)}`);
  }
  const warmupSteps = r.warmupSteps ?? 0;
  if (!Number.isSafeInteger(warmupSteps) || (warmupSteps as number) < 0) {
    throw new RangeError(`${name}.warmupSteps: expected a non-negative integer, got ${describe(r.warmupSteps)}`);
  }
  return Object.freeze({ rMax: r.rMax, dMax: r.dMax, warmupSteps: warmupSteps as number });
}

/**
 * An options object (or, with `what` = "field", a JSON object) whose own keys are all in `known`:
 * a misspelt key is a TypeError naming it and the closest known name, e.g.
 * "momentun: unknown option (did you mean 'momentum'?)". `prefix` goes before every name ("json.").
 */
export function checkKeys(v: unknown, known: ReadonlySet<string>, argName = "options", prefix = "", what = "option"): void {
  if (v === null || typeof v !== "object") throw new TypeError(`${argName}: expected an object, got ${describe(v)}`);
  for (const key in v) {
    if (!known.has(key) && Object.hasOwn(v, key)) throw new TypeError(`${prefix}${key}: unknown ${what}${unknownKey(key, known)}`);
  }
}

/** What to say about an unknown key: " (did you mean 'x'?)" with the closest known name, else the known names. */
export function unknownKey(key: string, known: ReadonlySet<string>): string {
  const close = closest(key, known);
  return close ? ` (did you mean '${close}'?)` : ` (expected one of ${[...known].join(", ")})`;
}

/**
 * The known name closest to `key`, compared case-, underscore- and dash-blind (so 'running_mean'
 * finds 'runningMean'): a prefix of either, or within an edit distance of a third of its length.
 */
function closest(key: string, known: ReadonlySet<string>): string | null {
  const fold = (s: string): string => s.toLowerCase().replace(/[_-]/g, "");
  const k = fold(key);
  let best: string | null = null;
  let bestDistance = Infinity;
  for (const name of known) {
    const n = fold(name);
    const d = k.length >= 3 && (n.startsWith(k) || k.startsWith(n)) ? 0.5 : editDistance(k, n);
    if (d < bestDistance && d <= Math.max(1, Math.floor(n.length / 3))) [best, bestDistance] = [name, d];
  }
  return best;
}

/** Optimal string alignment distance: insertions, deletions, substitutions and adjacent swaps. */
function editDistance(a: string, b: string): number {
  const rows = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) rows[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, rows[i - 2][j - 2] + 1);
      rows[i][j] = d;
    }
  }
  return rows[a.length][b.length];
}
