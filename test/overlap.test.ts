// `out` that overlaps an input without being it (issue 7 item 4): a RangeError naming `out`, with
// nothing written; exact identity (in place) stays allowed and gives the out-of-place answer. Overlap
// is judged on memory: Float32Arrays of one ArrayBuffer with intersecting byte ranges, WasmTensors and
// views of wasm memory with intersecting addresses.
import { describe, expect, it } from "vitest";
import type { WasmTensor } from "../src/index.js";
import { BACKENDS, backend } from "./helpers.js";
import { randn } from "./reference.js";

const shape = [3, 4, 5];
const L = 60;

describe.each(BACKENDS)("overlapping out, %s backend", (name) => {
  it("forward: out shifted against x, in either direction, throws and writes nothing", async () => {
    const bn = await backend(name);
    const buf = randn(L + 2, 1, 2, 1);
    const runningMean = new Float32Array(4);
    const runningVar = new Float32Array(4).fill(1);
    const before = buf.slice();
    for (const [x, out] of [
      [buf.subarray(1, L + 1), buf.subarray(0, L)],
      [buf.subarray(0, L), buf.subarray(1, L + 1)],
      [buf.subarray(0, L), buf.subarray(2, L + 2)],
    ]) {
      const call = () => bn.batchNorm(x, { shape, out, runningMean, runningVar });
      expect(call).toThrow(RangeError);
      expect(call).toThrow(/^out: overlaps x without being x/);
    }
    expect(Array.from(buf)).toEqual(Array.from(before));
    expect(Array.from(runningMean)).toEqual([0, 0, 0, 0]);
  });

  it("forward: WasmTensors and views of wasm memory overlap by address", async () => {
    const bn = await backend(name);
    const t = bn.alloc(L + 4);
    t.data.set(randn(L + 4, 2));
    const before = t.data.slice();
    const call = (xi: Float32Array | WasmTensor, out: Float32Array | WasmTensor) => () => bn.batchNorm(xi, { shape, out });
    expect(call(t.data.subarray(0, L), t.data.subarray(1, L + 1))).toThrow(/^out: overlaps x without being x/); // two views of one tensor
    // a WasmTensor x and an out view shifted inside the same block
    const wide = bn.alloc(L + 1);
    const xInWide = wide.data.subarray(1, L + 1);
    xInWide.set(randn(L, 4));
    expect(call(xInWide, wide.data.subarray(0, L))).toThrow(/^out: overlaps x/);
    expect(call(wide.data.subarray(0, L), xInWide)).toThrow(/^out: overlaps x/);
    expect(Array.from(t.data)).toEqual(Array.from(before));
    for (const w of [t, wide]) w.free();
  });

  it("forward: out may be x itself (Float32Array, WasmTensor, or a view of the WasmTensor's memory)", async () => {
    const bn = await backend(name);
    const data = randn(L, 5, 3, 2);
    const expected = bn.batchNorm(data, { shape }).y;
    const plain = data.slice();
    expect(bn.batchNorm(plain, { shape, out: plain }).y).toBe(plain);
    expect(Array.from(plain)).toEqual(Array.from(expected));
    const t = bn.alloc(L);
    t.data.set(data);
    expect(bn.batchNorm(t, { shape, out: t }).y).toBe(t.data);
    expect(Array.from(t.data)).toEqual(Array.from(expected));
    t.data.set(data);
    bn.batchNorm(t, { shape, out: t.data }); // the same memory: in place
    expect(Array.from(t.data)).toEqual(Array.from(expected));
    t.free();
  });

  it("forward: out may not share memory with a per-channel argument", async () => {
    const bn = await backend(name);
    const buf = randn(L + 4, 6);
    const x = randn(L, 7);
    const params = { weight: buf.subarray(0, 4), bias: buf.subarray(0, 4), runningMean: buf.subarray(0, 4), runningVar: buf.subarray(0, 4) };
    for (const [key, v] of Object.entries(params)) {
      const options = { shape, out: buf.subarray(3, L + 3), [key]: v, ...(key.startsWith("running") ? { runningMean: v, runningVar: v } : {}) };
      expect(() => bn.batchNorm(x, options)).toThrow(new RegExp(`^out: shares memory with (${key}|runningMean)`));
    }
    const w = bn.alloc(L + 4);
    w.data.set(randn(L + 4, 8));
    expect(() => bn.batchNorm(x, { shape, weight: w.data.subarray(L), out: w.data.subarray(3, L + 3) })).toThrow(/^out: shares memory with weight/);
    // disjoint parts of one buffer are fine
    const ok = bn.batchNorm(x, { shape, weight: w.data.subarray(L), out: w.data.subarray(0, L) });
    expect(ok.y.length).toBe(L);
    w.free();
  });

  it("backward: out === dy and out === x give the out-of-place dx, on every tensor path", async () => {
    const bn = await backend(name);
    const x = randn(L, 9, 2, 1);
    const dy = randn(L, 10);
    const weight = randn(4, 11, 0.5, 1);
    const { mean, invstd } = bn.batchNorm(x, { shape });
    const expected = bn.batchNormBackward(dy, x, { shape, weight, mean, invstd }).dx;
    const xt = bn.alloc(L);
    const dyt = bn.alloc(L);
    for (const mode of ["copying", "zero-copy", "mixed"] as const) {
      for (const target of ["dy", "x"] as const) {
        xt.data.set(x);
        dyt.data.set(dy);
        const xa = mode === "copying" ? x.slice() : xt;
        const dya = mode === "zero-copy" ? dyt : dy.slice();
        const out = target === "dy" ? dya : xa;
        const { dx } = bn.batchNormBackward(dya, xa, { shape, weight, mean, invstd, out });
        expect(dx, `${mode}, out = ${target}`).toBe(out instanceof Float32Array ? out : out.data);
        expect(Array.from(dx), `${mode}, out = ${target}`).toEqual(Array.from(expected));
      }
    }
    xt.free();
    dyt.free();
  });

  it("backward: out partly overlapping dy or x, or sharing memory with the statistics, throws and writes nothing", async () => {
    const bn = await backend(name);
    const buf = randn(2 * L + 1, 12);
    const before = buf.slice();
    const x = buf.subarray(0, L);
    const dy = buf.subarray(L + 1, 2 * L + 1);
    const { mean, invstd } = bn.batchNorm(x, { shape });
    const cases: [Float32Array, RegExp][] = [
      [buf.subarray(L, 2 * L), /^out: overlaps dy without being dy/],
      [buf.subarray(1, L + 1), /^out: overlaps x without being x/],
    ];
    for (const [out, message] of cases) {
      const call = () => bn.batchNormBackward(dy, x, { shape, mean, invstd, out });
      expect(call).toThrow(RangeError);
      expect(call).toThrow(message);
    }
    const stats = new Float32Array(L + 4);
    stats.set(mean, L);
    expect(() => bn.batchNormBackward(dy, x, { shape, mean: stats.subarray(L), invstd, out: stats.subarray(1, L + 1) }))
      .toThrow(/^out: shares memory with mean/);
    expect(Array.from(buf)).toEqual(Array.from(before));
  });
});
