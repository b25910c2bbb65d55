// Shared test helpers: both backends, the golden-case reader and the accuracy bar.
import { readFileSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { expect } from "vitest";
import { init, type Backend } from "../src/index.js";

export const BACKENDS = ["simd", "scalar"] as const;
/** Thread counts every split-aware test runs with (2: a worker pool on shared memory). */
export const THREADS = [1, 2] as const;

/** A backend with `threads` threads (default 1); where workers exist (Node) its memory is shared, see plainBackend. */
export async function backend(name: (typeof BACKENDS)[number], threads: number = 1): Promise<Backend> {
  return init({ backend: name, threads });
}

/**
 * A backend on a plain (non-shared) wasm memory, as a browser page without cross-origin isolation
 * gets (growing it detaches its buffer): loaded with SharedArrayBuffer hidden, 1 thread. init()
 * caches backends, so call it before any other init() of this build with 1 thread in the test file.
 */
export async function plainBackend(name: (typeof BACKENDS)[number]): Promise<Backend> {
  const g = globalThis as { SharedArrayBuffer?: unknown };
  const sab = g.SharedArrayBuffer;
  delete g.SharedArrayBuffer;
  let bn: Backend;
  try {
    bn = await init({ backend: name, threads: 1 });
  } finally {
    g.SharedArrayBuffer = sab;
  }
  const probe = bn.alloc(1);
  const shared = probe.data.buffer instanceof SharedArrayBuffer;
  probe.free();
  if (shared) throw new Error(`plainBackend: a shared ${name} backend with 1 thread was loaded earlier in this file`);
  return bn;
}

const goldenDir = fileURLToPath(new URL("./golden/", import.meta.url));

export interface GoldenCase {
  name: string;
  op: "forward_train" | "forward_eval" | "backward" | "sequence" | "forward_train_error";
  mode: "train" | "eval";
  layout: "NC" | "NCL" | "NCHW" | "NCDHW" | "NHWC";
  shape: number[];
  eps: number;
  momentum: number | null;
  affine: boolean;
  track_running_stats: boolean;
  inputs: Record<string, number[] | number>;
  expected: Record<string, number[] | number>;
  expected_f64: Record<string, (number | string)[] | number>;
  torch_f32_max_abs_err: Record<string, number | string>;
  error?: string;
  steps?: { mode: "train" | "eval"; x: number[]; expected_f64: GoldenCase["expected_f64"]; torch_f32_max_abs_err: GoldenCase["torch_f32_max_abs_err"] }[];
}

export function goldenNames(): string[] {
  return readdirSync(goldenDir)
    .filter((f) => f.endsWith(".json"))
    .map((f) => f.slice(0, -5))
    .sort();
}

export function golden(name: string): GoldenCase {
  return JSON.parse(readFileSync(goldenDir + name + ".json", "utf8"));
}

/** The case's shape in our memory order and layout (NHWC's logical [N, C, H, W] becomes [N, H, W, C]). */
export function memoryShape(c: GoldenCase): { shape: number[]; layout: "channels-first" | "channels-last" } {
  if (c.layout !== "NHWC") return { shape: c.shape, layout: "channels-first" };
  const [n, ch, ...spatial] = c.shape;
  return { shape: [n, ...spatial, ch], layout: "channels-last" };
}

export const f32 = (a: unknown): Float32Array => Float32Array.from(a as number[]);
export const f64 = (a: unknown): Float64Array => Float64Array.from(a as (number | string)[], Number);

export const ULP = 2 ** -23;

/**
 * The accuracy bar for quantity q: max|ours - f64| <= max(2 * torch's float32 error, 8 ulp of max|f64 q|).
 * Where torch's float32 answer is not finite (it overflowed), only the ulp term counts and ours must be finite.
 * Returns a message when the bar is missed, else null.
 */
export function checkBar(q: string, ours: ArrayLike<number>, expected: ArrayLike<number>, torchErr: number | string): string | null {
  const err = Number(torchErr);
  let scale = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]));
  const bar = Math.max(Number.isFinite(err) ? 2 * err : 0, 8 * ULP * scale);
  if (ours.length !== expected.length) return `${q}: length ${ours.length}, expected ${expected.length}`;
  let worst = 0;
  for (let i = 0; i < ours.length; i++) {
    if (!Number.isFinite(ours[i])) return `${q}[${i}] = ${ours[i]} is not finite (f64: ${expected[i]})`;
    worst = Math.max(worst, Math.abs(ours[i] - expected[i]));
  }
  return worst <= bar ? null : `${q}: max error ${worst} > bar ${bar} (torch f32 error ${err})`;
}

/** Expects the same length and max |a - b| <= tol * max(1, max |b|). */
export function expectClose(a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-5): void {
  expect(a.length).toBe(b.length);
  let scale = 1;
  let worst = 0;
  for (let i = 0; i < b.length; i++) {
    scale = Math.max(scale, Math.abs(b[i]));
    worst = Math.max(worst, Math.abs(a[i] - b[i]));
  }
  expect(worst).toBeLessThanOrEqual(tol * scale);
}
