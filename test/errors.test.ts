// Bad input gets a TypeError or RangeError that names the argument, and changes nothing.
import { describe, expect, it } from "vitest";
import { BACKENDS, backend } from "./helpers.js";
import { randn } from "./reference.js";

describe.each(BACKENDS)("validation, %s backend", (name) => {
  it("rejects bad arguments with precise errors and leaves state untouched", async () => {
    const bn = await backend(name);
    const shape = [2, 3, 4];
    const x = randn(24, 1);
    const weight = Float32Array.of(1, 2, 3);
    const runningMean = Float32Array.of(0.5, 0.5, 0.5);
    const runningVar = Float32Array.of(2, 2, 2);
    const snapshot = () => [x, weight, runningMean, runningVar].map((a) => Array.from(a));
    const before = snapshot();
    const base = { shape, weight, runningMean, runningVar };
    const bad: [unknown, unknown, RegExp, ErrorConstructor][] = [
      [Array.from(x), base, /^x: expected a Float32Array or WasmTensor, got Array\(24\)/, TypeError],
      [Float64Array.from(x), base, /^x: .*got Float64Array\(24\)/, TypeError],
      [x, { ...base, shape: [2, 3, 5] }, /^shape: \[2, 3, 5\] holds 30 values but x has length 24/, RangeError],
      [x, { ...base, shape: [24] }, /^shape: expected at least 2 dimensions/, RangeError],
      [x, { ...base, shape: [2, 3, 4.5] }, /^shape: expected non-negative integers/, RangeError],
      [x, { ...base, shape: "2,3,4" }, /^shape: expected an array/, TypeError],
      [x, { ...base, weight: Float32Array.of(1, 2) }, /^weight: expected length 3 \(one per channel\), got 2/, RangeError],
      [x, { ...base, bias: new Float32Array(4) }, /^bias: expected length 3/, RangeError],
      [x, { ...base, runningVar: undefined }, /^runningMean, runningVar: give both or neither/, TypeError],
      [x, { ...base, runningMean: [0, 0, 0] }, /^runningMean: expected a Float32Array or WasmTensor, got Array\(3\)/, TypeError],
      [x, { ...base, eps: 0 }, /^eps: expected a finite number > 0, got 0/, RangeError],
      [x, { ...base, eps: NaN }, /^eps: .*got NaN/, RangeError],
      [x, { ...base, eps: Infinity }, /^eps: .*got Infinity/, RangeError],
      [x, { ...base, momentum: 1.5 }, /^momentum: expected a number in \[0, 1\], got 1.5/, RangeError],
      [x, { ...base, momentum: -0.1 }, /^momentum: .*got -0.1/, RangeError],
      [x, { ...base, momentum: null }, /^momentum: .*got null/, RangeError],
      [x, { ...base, layout: "NHWC" }, /^layout: expected 'channels-first' or 'channels-last', got "NHWC"/, TypeError],
      [x, { ...base, training: 1 }, /^training: expected a boolean, got 1/, TypeError],
      [x, { ...base, out: new Float32Array(23) }, /^out: expected length 24, got 23/, RangeError],
      [x, null, /^options: expected an object, got null/, TypeError],
      [new Float32Array(3), { ...base, shape: [1, 3] }, /Expected more than 1 value per channel when training, got input size \[1, 3\]/, RangeError],
    ];
    for (const [input, options, message, type] of bad) {
      const call = () => bn.batchNorm(input as Float32Array, options as never);
      expect(call).toThrow(type);
      expect(call).toThrow(message);
      expect(snapshot()).toEqual(before);
    }
  });

  it("freed tensors, tensors of another backend, and backward without statistics", async () => {
    const bn = await backend(name);
    const other = await backend(name === "simd" ? "scalar" : "simd");
    const t = bn.alloc(8);
    t.free();
    expect(() => bn.batchNorm(t, { shape: [2, 4] })).toThrow(/^x: expected a live WasmTensor, got a freed one/);
    expect(() => t.data).toThrow(TypeError);
    const foreign = other.alloc(8);
    expect(() => bn.batchNorm(foreign, { shape: [2, 4] })).toThrow(/another backend's memory/);
    foreign.free();
    const x = randn(8, 2);
    expect(() => bn.batchNormBackward(x, x, { shape: [2, 4] })).toThrow(/^mean: required with training: true/);
    expect(() => bn.batchNormBackward(x, x, { shape: [2, 4], mean: new Float32Array(4) })).toThrow(/^invstd: required/);
    expect(() => bn.batchNormBackward(x, x, { shape: [2, 4], training: false })).toThrow(/^runningMean: required with training: false/);
    expect(() => bn.batchNormBackward(x.subarray(1), x, { shape: [2, 4] })).toThrow(/^dy: expected length 8 \(as x\), got 7/);
    expect(() => new bn.BatchNorm(0)).toThrow(/^numFeatures: expected a positive integer, got 0/);
    expect(() => new bn.BatchNorm(3, { momentum: 2 })).toThrow(/^momentum/);
    const layer = new bn.BatchNorm(4);
    expect(() => layer.forward(x, [2, 2, 2])).toThrow(/^x: expected 4 channels \(numFeatures\), got 2/);
    expect(layer.numBatchesTracked).toBe(0);
  });

  it("NaN and Infinity propagate as in PyTorch, without throwing", async () => {
    const bn = await backend(name);
    const x = Float32Array.of(1, 2, NaN, 4, 5, 6, 7, 8);
    const { y, mean } = bn.batchNorm(x, { shape: [4, 2] });
    expect(Number.isNaN(mean[0])).toBe(true);
    expect(Number.isNaN(y[0]) && Number.isNaN(y[2])).toBe(true);
    expect(Number.isFinite(mean[1]) && Number.isFinite(y[1])).toBe(true);
    const z = bn.batchNorm(Float32Array.of(1, Infinity, 3, 4), { shape: [2, 2] });
    expect(Number.isNaN(z.y[1])).toBe(true);
    expect(z.y[0]).toBeCloseTo(-1, 4);
  });

  it("empty batches return empty output and change nothing", async () => {
    const bn = await backend(name);
    const runningMean = Float32Array.of(1, 2);
    const r = bn.batchNorm(new Float32Array(0), { shape: [0, 2, 3], runningMean, runningVar: Float32Array.of(1, 1) });
    expect(r.y.length).toBe(0);
    expect(Array.from(runningMean)).toEqual([1, 2]);
    const g = bn.batchNormBackward(new Float32Array(0), new Float32Array(0), { shape: [0, 2], mean: r.mean, invstd: r.invstd });
    expect(g.dx.length).toBe(0);
    expect(Array.from(g.dbias)).toEqual([0, 0]);
  });
});
