// Argument checks, done once at the API boundary: each throws a TypeError or RangeError that names
// the argument, what was expected and what was given, before anything is allocated or mutated.
import { WasmMemory, WasmTensor } from "./memory.js";

/** Data the API accepts: a Float32Array anywhere, or a WasmTensor of the same backend. */
export type Tensor = Float32Array | WasmTensor;
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

export function checkTensor(name: string, v: unknown, memory: WasmMemory): asserts v is Tensor {
  if (v instanceof Float32Array) return;
  if (v instanceof WasmTensor) {
    if (v.freed) throw new TypeError(`${name}: expected a live WasmTensor, got a freed one`);
    if (!v.belongsTo(memory)) throw new TypeError(`${name}: the WasmTensor belongs to another backend's memory`);
    return;
  }
  throw new TypeError(`${name}: expected a Float32Array or WasmTensor, got ${describe(v)}`);
}

/** An optional tensor of `length` floats, or undefined/null; `unit` says what the length counts. */
function checkOptional(name: string, v: unknown, length: number, unit: string, memory: WasmMemory): Tensor | null {
  if (v === undefined || v === null) return null;
  checkTensor(name, v, memory);
  if (v.length !== length) throw new RangeError(`${name}: expected length ${length}${unit}, got ${v.length}`);
  return v;
}

/** An optional per-channel array (length C), or undefined/null. */
export function checkChannels(name: string, v: unknown, c: number, memory: WasmMemory): Tensor | null {
  return checkOptional(name, v, c, " (one per channel)", memory);
}

export function checkLayout(v: unknown): Layout {
  if (v === undefined) return "channels-first";
  if (v === "channels-first" || v === "channels-last") return v;
  throw new TypeError(`layout: expected 'channels-first' or 'channels-last', got ${describe(v)}`);
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

export function checkMomentum(v: unknown, allowNull: boolean): number | null {
  if (v === undefined) return 0.1;
  if (v === null && allowNull) return null;
  if (typeof v !== "number" || !(v >= 0 && v <= 1)) {
    throw new RangeError(`momentum: expected a number in [0, 1]${allowNull ? " or null" : ""}, got ${describe(v)}`);
  }
  return v;
}

export function checkBoolean(name: string, v: unknown, fallback: boolean): boolean {
  if (v === undefined) return fallback;
  if (typeof v !== "boolean") throw new TypeError(`${name}: expected a boolean, got ${describe(v)}`);
  return v;
}

/** torch's rule: batch statistics need more than one value per channel. */
export function checkBatchStats(g: Geometry): void {
  if (g.count === 1) {
    throw new RangeError(
      `Expected more than 1 value per channel when training, got input size [${g.shape.join(", ")}]`,
    );
  }
}

/** An optional destination the size of the input, or undefined/null. */
export function checkOut(name: string, v: unknown, length: number, memory: WasmMemory): Tensor | null {
  return checkOptional(name, v, length, "", memory);
}
