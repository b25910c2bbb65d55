// foldBatchNorm against PyTorch (test/golden-fold/, made by scripts/make_fold_golden.py): the folded
// weight and bias against torch's fusion done in float64, and the folded layer's output against
// layer -> BN (eval) in float64, within the library's bar; every input form gives the same bits;
// inputs stay untouched; every bad argument gets a named error.
import { readFileSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import type { Backend, FoldBatchNormParams, FoldLayer, FoldResult } from "../src/index.js";
import { BACKENDS, backend, checkBar, f32 } from "./helpers.js";
import { randn } from "./reference.js";

interface FoldCase {
  name: string;
  transposed: boolean;
  groups: number;
  shape: number[];
  x_shape: number[];
  eps: number;
  affine: boolean;
  conv_bias: boolean;
  inputs: { weight: number[]; bias: number[] | null; bn: Record<string, number[] | number>; x: number[] };
  expected: Record<"weight" | "bias" | "y", number[]>;
  expected_f64: Record<"weight" | "bias" | "y", number[]>;
  torch_f32_max_abs_err: Record<"weight" | "bias" | "y", number>;
}

const dir = fileURLToPath(new URL("./golden-fold/", import.meta.url));
const cases: FoldCase[] = readdirSync(dir)
  .filter((f) => f.endsWith(".json"))
  .sort()
  .map((f) => JSON.parse(readFileSync(dir + f, "utf8")));

const product = (dims: readonly number[]): number => dims.reduce((p, d) => p * d, 1);

/** Row-major offset of multi-index `at` in `dims`. */
function offset(at: readonly number[], dims: readonly number[]): number {
  let k = 0;
  for (let i = 0; i < dims.length; i++) k = k * dims[i] + at[i];
  return k;
}

/** Every multi-index of `dims`, in row-major order. */
function indices(dims: readonly number[]): number[][] {
  const out: number[][] = [];
  for (let k = 0; k < product(dims); k++) {
    const at = new Array<number>(dims.length);
    for (let i = dims.length - 1, r = k; i >= 0; i--) {
      at[i] = r % dims[i];
      r = Math.floor(r / dims[i]);
    }
    out.push(at);
  }
  return out;
}

/**
 * The layer in float64, stride 1, no padding: Linear is the case without spatial dims.
 * Conv: y[n, o, p] = b[o] + sum over its group's inputs i and kernel k of w[o, i, k] x[n, i, p + k].
 * ConvTranspose (groups 1): y[n, o, p + k] += w[i, o, k] x[n, i, p].
 */
function layer64(x: ArrayLike<number>, xShape: number[], w: ArrayLike<number>, wShape: number[], b: ArrayLike<number>, transposed: boolean, groups: number): { y: Float64Array; shape: number[] } {
  const [n, cin, ...sin] = xShape;
  const kernel = wShape.slice(2);
  const cout = transposed ? wShape[1] : wShape[0];
  const sout = sin.map((d, i) => (transposed ? d + kernel[i] - 1 : d - kernel[i] + 1));
  const shape = [n, cout, ...sout];
  const y = new Float64Array(product(shape));
  const ks = indices(kernel);
  const add = (i: number[], k: number[]) => i.map((d, j) => d + k[j]);
  if (transposed) {
    for (let ni = 0; ni < n; ni++) {
      for (let o = 0; o < cout; o++) for (const p of indices(sout)) y[offset([ni, o, ...p], shape)] = b[o];
      for (let i = 0; i < cin; i++) {
        for (const p of indices(sin)) {
          const xv = x[offset([ni, i, ...p], xShape)];
          for (let o = 0; o < cout; o++) {
            for (const k of ks) y[offset([ni, o, ...add(p, k)], shape)] += w[offset([i, o, ...k], wShape)] * xv;
          }
        }
      }
    }
  } else {
    const perGroup = cin / groups;
    for (let ni = 0; ni < n; ni++) {
      for (let o = 0; o < cout; o++) {
        const first = Math.floor(o / (cout / groups)) * perGroup;
        for (const p of indices(sout)) {
          let acc = b[o];
          for (let i = 0; i < perGroup; i++) {
            for (const k of ks) acc += w[offset([o, i, ...k], wShape)] * x[offset([ni, first + i, ...add(p, k)], xShape)];
          }
          y[offset([ni, o, ...p], shape)] = acc;
        }
      }
    }
  }
  return { y, shape };
}

/** One float32 ulp at |v| (normal range). */
const ulp32 = (v: number): number => 2 ** (Math.floor(Math.log2(Math.abs(v))) - 23);

const channels = (c: FoldCase): number => (c.transposed ? c.shape[1] : c.shape[0]);

/** Copies of every array reachable from `v` (one level deep), to check nothing was written. */
function snapshot(...values: unknown[]): unknown[] {
  const copy = (v: unknown): unknown => (v instanceof Float32Array || Array.isArray(v) ? Array.from(v) : v);
  return values.map((v) => (v && typeof v === "object" && !ArrayBuffer.isView(v) ? Object.fromEntries(Object.entries(v).map(([k, e]) => [k, copy(e)])) : copy(v)));
}

it("has the golden cases: Linear, Conv1d/2d/3d, ConvTranspose1d/2d/3d, with and without biases and affine", () => {
  expect(cases.length).toBeGreaterThanOrEqual(16);
  expect(cases.filter((c) => c.transposed).length).toBeGreaterThanOrEqual(4);
  expect(new Set(cases.map((c) => c.shape.length))).toEqual(new Set([2, 3, 4, 5]));
  expect(cases.some((c) => !c.conv_bias && !c.affine)).toBe(true);
  expect(cases.some((c) => c.eps === 1e-3)).toBe(true);
  expect(cases.some((c) => c.groups > 1)).toBe(true);
});

describe.each(BACKENDS)("foldBatchNorm against PyTorch, %s backend", (name) => {
  it.each(cases.map((c) => [c.name, c] as const))("%s", async (_, c) => {
    const bn = await backend(name);
    const C = channels(c);
    const weight = f32(c.inputs.weight);
    const bias = c.inputs.bias && f32(c.inputs.bias);
    const conv: FoldLayer = { weight, shape: c.shape, bias, transposed: c.transposed };
    // the state_dict as PyTorch dumps it (number[] and num_batches_tracked), eps only where not the default
    const state = { ...c.inputs.bn, ...(c.eps === 1e-5 ? {} : { eps: c.eps }) } as unknown as FoldBatchNormParams;
    const before = snapshot(conv, state);
    const ours = bn.foldBatchNorm(conv, state);
    expect(snapshot(conv, state)).toEqual(before);
    expect(ours.weight).not.toBe(weight);
    expect(ours.weight.length).toBe(weight.length);
    expect(ours.bias.length).toBe(C);

    // the library's bar against torch's fusion in float64
    for (const q of ["weight", "bias"] as const) {
      expect(checkBar(q, ours[q], c.expected_f64[q], c.torch_f32_max_abs_err[q])).toBeNull();
      // float64, then one rounding: within half a float32 ulp of the exact value, element by element
      ours[q].forEach((v, i) => {
        const e = c.expected_f64[q][i];
        expect(Math.abs(v - e), `${q}[${i}]`).toBeLessThanOrEqual(e === 0 ? 0 : ulp32(e) / 2);
      });
    }

    // the folded layer's output against layer -> BN (eval), both in float64
    const { y } = layer64(c.inputs.x, c.x_shape, ours.weight, c.shape, ours.bias, c.transposed, c.groups);
    expect(checkBar("y", y, c.expected_f64.y, c.torch_f32_max_abs_err.y)).toBeNull();

    // the same bits from a module (in training or eval mode), Float32Arrays and WasmTensors
    const module = new bn.BatchNorm(C, { eps: c.eps, affine: c.affine });
    module.loadStateDict(c.inputs.bn as never);
    const moduleBefore = snapshot(module.stateDict());
    expect(bn.foldBatchNorm(conv, module)).toEqual(ours);
    expect(bn.foldBatchNorm(conv, module.eval())).toEqual(ours);
    expect(snapshot(module.stateDict())).toEqual(moduleBefore);
    const typed = Object.fromEntries(Object.entries(state).map(([k, v]) => [k, Array.isArray(v) ? f32(v) : v]));
    expect(bn.foldBatchNorm({ ...conv, bias: bias ?? undefined }, typed as FoldBatchNormParams)).toEqual(ours);
    const tensors: ReturnType<Backend["alloc"]>[] = [];
    const put = (a: ArrayLike<number>) => {
      const t = bn.alloc(a.length);
      t.data.set(a);
      tensors.push(t);
      return t;
    };
    const wasmConv = { weight: put(weight), shape: c.shape, bias: bias && put(bias), transposed: c.transposed };
    const wasmState = Object.fromEntries(Object.entries(typed).map(([k, v]) => [k, v instanceof Float32Array ? put(v) : v]));
    expect(bn.foldBatchNorm(wasmConv, wasmState as FoldBatchNormParams)).toEqual(ours);
    expect(wasmConv.weight.data).toEqual(weight);
    for (const t of tensors) t.free();
  });
});

describe("foldBatchNorm over shapes", () => {
  it("scales each output channel on its axis, any rank, transposed or not (float64 formula, rounded once)", async () => {
    const bn = await backend("simd", 2); // shared memory: WasmTensors of a threaded backend read the same
    let seed = 1;
    const dim = () => 1 + ((seed++ * 7919) % 4);
    for (let trial = 0; trial < 60; trial++) {
      const transposed = trial % 3 === 0;
      const rank = (transposed ? 2 : 1) + (trial % 4);
      const shape = Array.from({ length: rank }, dim);
      const axis = transposed ? 1 : 0;
      const C = shape[axis];
      const w = randn(product(shape), trial + 1, 2);
      const conv = { weight: bn.alloc(w.length), shape, bias: trial % 2 ? randn(C, trial + 100) : null, transposed };
      conv.weight.data.set(w);
      const gamma = randn(C, trial + 200, 1, 0.5);
      const beta = randn(C, trial + 300);
      const mean = randn(C, trial + 400, 3);
      const variance = randn(C, trial + 500).map(Math.abs);
      const eps = trial % 5 ? 1e-5 : 1e-3;
      const got = bn.foldBatchNorm(conv, { weight: gamma, bias: beta, running_mean: mean, running_var: variance, eps });
      const s = (o: number) => gamma[o] / Math.sqrt(variance[o] + eps);
      indices(shape).forEach((at, k) => {
        expect(got.weight[k]).toBe(Math.fround(w[k] * s(at[axis])));
      });
      for (let o = 0; o < C; o++) expect(got.bias[o]).toBe(Math.fround(((conv.bias?.[o] ?? 0) - mean[o]) * s(o) + beta[o]));
      conv.weight.free();
    }
  });

  it("empty weights and channels give empty arrays", async () => {
    const bn = await backend("scalar");
    const none = { running_mean: [], running_var: [] };
    expect(bn.foldBatchNorm({ weight: new Float32Array(0), shape: [0, 4] }, none)).toEqual({ weight: new Float32Array(0), bias: new Float32Array(0) });
    expect(bn.foldBatchNorm({ weight: new Float32Array(0), shape: [3, 0, 2], transposed: true }, none).weight.length).toBe(0);
    const two = bn.foldBatchNorm({ weight: new Float32Array(0), shape: [2, 0] }, { running_mean: [1, 2], running_var: [3, 0], bias: [5, 6] });
    expect(two.weight.length).toBe(0);
    expect(Array.from(two.bias)).toEqual([Math.fround(-1 / Math.sqrt(3 + 1e-5) + 5), Math.fround(-2 / Math.sqrt(1e-5) + 6)]);
  });
});

describe.each(BACKENDS)("foldBatchNorm errors, %s backend", (name) => {
  it("rejects bad arguments with errors that name them, and changes nothing", async () => {
    const bn = await backend(name);
    const weight = randn(2 * 3 * 3 * 3, 7);
    const conv = { weight, shape: [2, 3, 3, 3], bias: Float32Array.of(1, 2) };
    const layer = { running_mean: [0.5, -1], running_var: [1, 2] };
    const notrack = new bn.BatchNorm(2, { trackRunningStats: false });
    const wide = new bn.BatchNorm(3);
    const shortVar = new bn.BatchNorm(2);
    shortVar.runningVar = new Float32Array(3);
    const freed = bn.alloc(54);
    freed.free();
    const other = await backend(name === "simd" ? "scalar" : "simd");
    const foreign = other.alloc(2);
    const before = snapshot(conv, layer, weight);
    const bad: [unknown, unknown, RegExp, ErrorConstructor][] = [
      [null, layer, /^conv: expected an object \{ weight, shape, bias\?, transposed\? \}, got null/, TypeError],
      [{ ...conv, transpose: true }, layer, /^conv\.transpose: unknown key \(did you mean 'transposed'\?\)/, TypeError],
      [{ ...conv, transposed: 1 }, layer, /^conv\.transposed: expected a boolean, got 1/, TypeError],
      [{ ...conv, weight: Array.from(weight) }, layer, /^conv\.weight: expected a Float32Array or WasmTensor, got Array\(54\)/, TypeError],
      [{ ...conv, weight: freed }, layer, /^conv\.weight: expected a live WasmTensor, got a freed one/, TypeError],
      [{ ...conv, shape: "2,3,3,3" }, layer, /^conv\.shape: expected an array of dimensions, got "2,3,3,3"/, TypeError],
      [{ ...conv, shape: [] }, layer, /^conv\.shape: expected at least 1 dimension \(\[out, \.\.\.\]\), got \[\]/, RangeError],
      [{ ...conv, shape: [54], transposed: true }, layer, /^conv\.shape: expected at least 2 dimensions \(\[in, out, \.\.\.kernel\]\), got \[54\]/, RangeError],
      [{ ...conv, shape: [2, 3, 4.5, 2] }, layer, /^conv\.shape: expected non-negative integers, got \[2, 3, 4\.5, 2\]/, RangeError],
      [{ ...conv, shape: [-2, -3, 3, 3] }, layer, /^conv\.shape: expected non-negative integers/, RangeError],
      [{ ...conv, shape: [2, 3, 3, 2] }, layer, /^conv\.shape: \[2, 3, 3, 2\] holds 36 values but conv\.weight has length 54/, RangeError],
      [conv, { running_mean: [0, 0, 0], running_var: [1, 1, 1] }, /^conv\.shape: \[2, 3, 3, 3\] has 2 output channels on axis 0 \(\[out, \.\.\.\]\) but the BatchNorm has 3 \(layer\.running_mean's length\)/, RangeError],
      [{ ...conv, transposed: true }, layer, /^conv\.shape: \[2, 3, 3, 3\] has 3 output channels on axis 1 \(\[in, out, \.\.\.kernel\]\) but the BatchNorm has 2/, RangeError],
      [conv, wide, /^conv\.shape: .* but the BatchNorm has 3 \(numFeatures\)/, RangeError],
      [{ ...conv, bias: Float32Array.of(1, 2, 3) }, layer, /^conv\.bias: expected length 2 \(one per channel\), got 3/, RangeError],
      [{ ...conv, bias: [1, 2] }, layer, /^conv\.bias: expected a Float32Array or WasmTensor, got Array\(2\)/, TypeError],
      [conv, null, /^layer: expected a BatchNorm module or \{ running_mean, running_var, weight\?, bias\?, eps\? \}, got null/, TypeError],
      [conv, notrack, /^layer: this BatchNorm has no running statistics \(trackRunningStats: false\), so it normalizes with each batch's own statistics in every mode/, TypeError],
      [conv, shortVar, /^layer\.runningVar: expected length 2 \(one per channel\), got 3/, RangeError],
      [conv, { runningMean: [0, 0], runningVar: [1, 1] }, /^layer\.runningMean: unknown key \(did you mean 'running_mean'\?\)/, TypeError],
      [conv, { running_mean: [0, 0] }, /^layer\.running_var: required/, TypeError],
      [conv, { running_mean: null, running_var: [1, 1] }, /^layer\.running_mean: required/, TypeError],
      [conv, { ...layer, running_var: [1, 2, 3] }, /^layer\.running_var: expected length 2 \(one per channel\), got 3/, RangeError],
      [conv, { ...layer, weight: [1] }, /^layer\.weight: expected length 2 \(one per channel\), got 1/, RangeError],
      [conv, { ...layer, bias: new Float32Array(3) }, /^layer\.bias: expected length 2/, RangeError],
      [conv, { ...layer, bias: "0,0" }, /^layer\.bias: expected a Float32Array, WasmTensor or number\[\], got "0,0"/, TypeError],
      [conv, { ...layer, running_mean: [0, "1"] }, /^layer\.running_mean: expected numbers, got "1" at index 1/, TypeError],
      [conv, { ...layer, running_mean: Float64Array.of(0, 1) }, /^layer\.running_mean: expected a Float32Array, WasmTensor or number\[\], got Float64Array\(2\)/, TypeError],
      [conv, { ...layer, running_mean: foreign }, /^layer\.running_mean: the WasmTensor belongs to another backend's memory/, TypeError],
      [conv, { ...layer, eps: NaN }, /^layer\.eps: expected a finite number > 0, got NaN/, RangeError],
      [conv, { ...layer, eps: Infinity }, /^layer\.eps: .*got Infinity/, RangeError],
      [conv, { ...layer, eps: 0 }, /^layer\.eps: .*got 0/, RangeError],
      [conv, { ...layer, eps: "1e-5" }, /^layer\.eps: .*got "1e-5"/, RangeError],
    ];
    for (const [c, l, message, type] of bad) {
      const call = () => bn.foldBatchNorm(c as FoldLayer, l as FoldBatchNormParams);
      expect(call).toThrow(type);
      expect(call).toThrow(message);
      expect(snapshot(conv, layer, weight)).toEqual(before);
    }
    foreign.free();
    // what a call that passes these checks returns, for contrast
    const ok: FoldResult = bn.foldBatchNorm(conv, { ...layer, num_batches_tracked: 3, weight: null, bias: undefined });
    expect(ok.bias[1]).toBe(Math.fround((2 + 1) / Math.sqrt(2 + 1e-5)));
    expect(ok.weight[0]).toBe(Math.fround(weight[0] * (1 / Math.sqrt(1 + 1e-5))));
  });
});
