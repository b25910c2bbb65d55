// JSON forms of float arrays, exact both ways: float32 values as the shortest decimal that rounds
// back to the same float32 (0.1, not 0.10000000149011612), float64 values as JavaScript writes them,
// and what JSON numbers cannot hold (NaN, +-Infinity, -0) as the strings "NaN", "Infinity",
// "-Infinity" and "-0".
import { describe } from "./validate.js";

/** A float in JSON: a number, or a string for a value JSON numbers cannot hold. */
export type JsonFloat = number | "NaN" | "Infinity" | "-Infinity" | "-0";

const SPECIAL = new Map<string, number>([["NaN", NaN], ["Infinity", Infinity], ["-Infinity", -Infinity], ["-0", -0]]);

/** `v` as JSON, or its string when JSON numbers cannot hold it. */
function special(v: number): JsonFloat | null {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "Infinity";
  if (v === -Infinity) return "-Infinity";
  return Object.is(v, -0) ? "-0" : null;
}

/** The shortest decimal that rounds to float32 `v` (at most 9 significant digits always do). */
function shortestF32(v: number): number {
  for (let digits = 1; digits < 9; digits++) {
    const d = Number(v.toPrecision(digits));
    if (Math.fround(d) === v) return d;
  }
  return v;
}

/** Float32 values as JSON: shortest round-tripping decimals. */
export function f32ToJSON(a: ArrayLike<number>): JsonFloat[] {
  return Array.from(a, (v) => special(v) ?? shortestF32(v));
}

/** Float64 values as JSON (JavaScript's number-to-string is already the shortest exact form). */
export function f64ToJSON(a: ArrayLike<number>): JsonFloat[] {
  return Array.from(a, (v) => special(v) ?? v);
}

/**
 * `length` floats from a Float32Array or Float64Array or an array of JsonFloat (as
 * `f32ToJSON`/`f64ToJSON` write them, or plain numbers): a TypeError or RangeError naming `name` for
 * anything else (its message names `typed`, the array the caller's values are).
 */
export function floatsFromJSON(name: string, v: unknown, length: number, typed = "Float32Array"): Float64Array {
  if (!(v instanceof Float32Array) && !(v instanceof Float64Array) && !Array.isArray(v)) {
    throw new TypeError(`${name}: expected a ${typed} or an array of ${length} numbers, got ${describe(v)}`);
  }
  if (v.length !== length) throw new RangeError(`${name}: expected length ${length}, got ${v.length}`);
  const out = new Float64Array(length);
  for (let i = 0; i < length; i++) {
    const e: unknown = v[i];
    const value = typeof e === "number" ? e : typeof e === "string" ? SPECIAL.get(e) : undefined;
    if (value === undefined) {
      throw new TypeError(`${name}[${i}]: expected a number (or "NaN", "Infinity", "-Infinity", "-0"), got ${describe(e)}`);
    }
    out[i] = value;
  }
  return out;
}

/** A JSON text parsed, or an object passed through (fromJSON accepts both). */
export function parseJSON(json: unknown): unknown {
  if (typeof json !== "string") return json;
  try {
    return JSON.parse(json);
  } catch (e) {
    throw new SyntaxError(`json: ${(e as Error).message}`);
  }
}
