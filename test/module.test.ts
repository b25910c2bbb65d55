// BatchNorm (the module) and init(): torch.nn.BatchNorm semantics beyond the golden cases.
import { describe, expect, it } from "vitest";
import { init } from "../src/index.js";
import { BACKENDS, backend } from "./helpers.js";
import { randn, referenceForward } from "./reference.js";

describe("init", () => {
  it("is idempotent and shares one load between concurrent calls", async () => {
    const [a, b] = await Promise.all([init(), init()]);
    expect(a).toBe(b);
    expect(await init()).toBe(a);
    expect(a.backend).toBe("simd"); // Node 20 validates wasm SIMD
    expect(await init({ backend: "simd" })).toBe(a);
    const s = await init({ backend: "scalar" });
    expect(s.backend).toBe("scalar");
    expect(s).not.toBe(a);
    await expect(init({ backend: "gpu" as never })).rejects.toThrow(TypeError);
  });
});

describe.each(BACKENDS)("BatchNorm module, %s backend", (name) => {
  it("trains, counts batches, and evaluates with the running statistics", async () => {
    const bn = await backend(name);
    const layer = new bn.BatchNorm(3, { momentum: null });
    expect(layer.training).toBe(true);
    const shape = [4, 3, 5];
    const batches = [randn(60, 1, 2, 1), randn(60, 2, 1, -1), randn(60, 3, 3, 0)];
    for (const x of batches) layer.forward(x, shape);
    expect(layer.numBatchesTracked).toBe(3);
    // momentum null: the running stats are the plain average of the batch stats (from counter 0)
    const means = batches.map((x) => referenceForward(x, { shape }).mean);
    for (let k = 0; k < 3; k++) {
      const avg = means.reduce((s, m) => s + m[k], 0) / 3;
      expect(layer.runningMean![k]).toBeCloseTo(avg, 6);
    }
    layer.eval();
    const x = randn(60, 9);
    const y = layer.forward(x, shape);
    const ref = referenceForward(x, { shape, runningMean: layer.runningMean, runningVar: layer.runningVar, training: false, weight: layer.weight, bias: layer.bias });
    for (let i = 0; i < y.length; i++) expect(y[i]).toBeCloseTo(ref.y[i], 5);
    expect(layer.numBatchesTracked).toBe(3);
  });

  it("without running stats normalizes with the batch in eval mode too, and backward flows through them", async () => {
    const bn = await backend(name);
    const layer = new bn.BatchNorm(2, { trackRunningStats: false, affine: false }).eval();
    expect(layer.runningMean).toBeNull();
    expect(layer.stateDict()).toEqual({});
    const x = randn(20, 4, 3, 2);
    const y = layer.forward(x, [5, 2, 2]);
    const ref = referenceForward(x, { shape: [5, 2, 2] });
    for (let i = 0; i < y.length; i++) expect(y[i]).toBeCloseTo(ref.y[i], 5);
    const dx = layer.backward(new Float32Array(20).fill(1));
    for (const v of dx) expect(Math.abs(v)).toBeLessThan(1e-5); // a constant dy has no gradient through batch stats
    expect(layer.weightGrad).toBeNull();
  });

  it("stateDict uses PyTorch's keys and loadStateDict is strict and atomic", async () => {
    const bn = await backend(name);
    const layer = new bn.BatchNorm(2);
    const sd = layer.stateDict();
    expect(Object.keys(sd).sort()).toEqual(["bias", "num_batches_tracked", "running_mean", "running_var", "weight"]);
    const other = new bn.BatchNorm(2);
    other.loadStateDict({ ...sd, weight: Float32Array.of(2, 3), num_batches_tracked: 5 });
    expect(Array.from(other.weight!)).toEqual([2, 3]);
    expect(other.numBatchesTracked).toBe(5);
    const before = other.stateDict();
    expect(() => other.loadStateDict({ ...sd, extra: 1 } as never)).toThrow(/unexpected key 'extra'/);
    expect(() => other.loadStateDict({ ...sd, running_var: Float32Array.of(1) })).toThrow(RangeError);
    expect(() => other.loadStateDict({ weight: sd.weight } as never)).toThrow(/stateDict.bias/);
    expect(other.stateDict()).toEqual(before);
  });

  it("channels-last module and WasmTensor input", async () => {
    const bn = await backend(name);
    const layer = new bn.BatchNorm(5, { layout: "channels-last" });
    const t = bn.alloc(2 * 3 * 5);
    t.data.set(randn(30, 21));
    const y = layer.forward(t, [2, 3, 5]);
    const ref = referenceForward(t.data, { shape: [2, 3, 5], layout: "channels-last" });
    for (let i = 0; i < y.length; i++) expect(y[i]).toBeCloseTo(ref.y[i], 5);
    const dx = layer.backward(randn(30, 22));
    expect(dx.length).toBe(30);
    t.free();
    expect(() => layer.backward(randn(30, 22))).toThrow(/freed/);
    layer.dispose();
  });

  it("backward before forward, and empty batches", async () => {
    const bn = await backend(name);
    const layer = new bn.BatchNorm(3);
    expect(() => layer.backward(new Float32Array(3))).toThrow(/call forward first/);
    const y = layer.forward(new Float32Array(0), [0, 3, 4]);
    expect(y.length).toBe(0);
    expect(layer.numBatchesTracked).toBe(1); // PyTorch counts an empty training batch (issue 7 item 5)
    expect(Array.from(layer.runningVar!)).toEqual([1, 1, 1]);
  });
});
