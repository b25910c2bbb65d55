// Frozen BN (issue 10 item 3) against PyTorch (test/golden-frozen/, made by scripts/make_frozen_golden.py:
// F.batch_norm(training=False) with requires_grad on x only, which is torchvision's FrozenBatchNorm2d):
// y and dx within the library's bar in every mode, on both backends, 1 and 2 threads, sync and async,
// Float32Arrays and WasmTensors; the running statistics, counter, gradients and state dict untouched;
// freeze() on a module without running statistics is a named error.
import { readFileSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { Executor } from "../src/executor.js";
import type { Backend, BatchNorm } from "../src/index.js";
import { BACKENDS, THREADS, backend, checkBar, f32, f64 } from "./helpers.js";
import { randn } from "./reference.js";

interface FrozenCase {
  name: string;
  layout: "channels-first" | "channels-last";
  shape: number[];
  eps: number;
  affine: boolean;
  inputs: Record<"x" | "dy" | "running_mean" | "running_var" | "weight" | "bias", number[]> & { num_batches_tracked: number };
  expected_f64: Record<"y" | "dx", number[]>;
  torch_f32_max_abs_err: Record<"y" | "dx", number>;
  param_grads: string;
}

const dir = fileURLToPath(new URL("./golden-frozen/", import.meta.url));
const cases: FrozenCase[] = readdirSync(dir)
  .filter((f) => f.endsWith(".json"))
  .sort()
  .map((f) => JSON.parse(readFileSync(dir + f, "utf8")));

const defaultSplit = Executor.splitBytes;
afterAll(() => {
  Executor.splitBytes = defaultSplit;
});

const bits = (a: Float32Array): number[] => Array.from(new Uint32Array(a.slice().buffer));

/** A module loaded with the case's state dict. */
function load(bn: Backend, c: FrozenCase): BatchNorm {
  const layer = new bn.BatchNorm(c.layout === "channels-last" ? c.shape[c.shape.length - 1] : c.shape[1], {
    eps: c.eps, affine: c.affine, layout: c.layout,
  });
  const { weight, bias, running_mean, running_var, num_batches_tracked } = c.inputs;
  layer.loadStateDict({ running_mean, running_var, num_batches_tracked, ...(c.affine ? { weight, bias } : {}) });
  return layer;
}

describe.each(BACKENDS.flatMap((b) => THREADS.map((t) => [b, t] as const)))("frozen BN, %s backend, %i thread(s)", (name, threads) => {
  it("has PyTorch's golden cases", () => {
    expect(cases.length).toBeGreaterThanOrEqual(8);
    expect(new Set(cases.map((c) => c.layout))).toEqual(new Set(["channels-first", "channels-last"]));
    for (const c of cases) expect(c.param_grads).toBe("none");
  });

  it.each(cases.map((c) => [c.name, c] as const))("%s: y and dx within the bar in train and eval mode, sync and async; nothing else changes", async (_, c) => {
    Executor.splitBytes = 0; // every call split over the threads
    const bn = await backend(name, threads);
    for (const async of [false, true]) {
      for (const mode of ["train", "eval"] as const) {
        const layer = load(bn, c).freeze().train(mode === "train");
        const before = JSON.stringify(layer.stateDict());
        const oldGrad = Float32Array.from(layer.weight ?? [], (_, i) => i + 0.5);
        if (c.affine) layer.weightGrad = oldGrad.slice(); // an existing gradient stays as it is
        const x = f32(c.inputs.x);
        const dy = f32(c.inputs.dy);
        const y = async ? await layer.forwardAsync(x, c.shape) : layer.forward(x, c.shape);
        const dx = async ? await layer.backwardAsync(dy) : layer.backward(dy);
        const tag = `${c.name} ${mode} ${async ? "async" : "sync"}`;
        expect(checkBar(`${tag} y`, y, f64(c.expected_f64.y), c.torch_f32_max_abs_err.y)).toBeNull();
        expect(checkBar(`${tag} dx`, dx, f64(c.expected_f64.dx), c.torch_f32_max_abs_err.dx)).toBeNull();
        expect(JSON.stringify(layer.stateDict())).toBe(before);
        expect(layer.numBatchesTracked).toBe(c.inputs.num_batches_tracked);
        expect(layer.biasGrad).toBeNull();
        expect(layer.weightGrad === null ? null : Array.from(layer.weightGrad)).toEqual(c.affine ? Array.from(oldGrad) : null);
        // the frozen backward is the eval-mode backward of the same module, to the bit
        const plain = load(bn, c).eval();
        plain.forward(x, c.shape);
        expect(bits(dx)).toEqual(bits(plain.backward(dy)));
      }
    }
  });

  it("zero-copy: a WasmTensor input may be freed after a frozen forward (only the running variance is kept)", async () => {
    Executor.splitBytes = 0;
    const bn = await backend(name, threads);
    const c = cases.find((k) => k.layout === "channels-last")!;
    const x = bn.alloc(c.inputs.x.length);
    x.data.set(c.inputs.x);
    const layer = load(bn, c).freeze();
    const y = layer.forward(x, c.shape);
    x.free();
    layer.runningVar!.fill(123); // backward uses the variance the forward normalized with
    const dy = bn.alloc(c.inputs.dy.length);
    dy.data.set(c.inputs.dy);
    const dx = layer.backward(dy.data);
    dy.free();
    expect(checkBar("y", y, f64(c.expected_f64.y), c.torch_f32_max_abs_err.y)).toBeNull();
    expect(checkBar("dx", dx, f64(c.expected_f64.dx), c.torch_f32_max_abs_err.dx)).toBeNull();
  });
});

describe.each(BACKENDS)("frozen BN semantics, %s backend", (name) => {
  it("freeze()/unfreeze()/frozen: the mode does not unfreeze; unfrozen, training counts and updates again", async () => {
    const bn = await backend(name);
    const layer = new bn.BatchNorm(3, { momentum: null });
    expect(layer.frozen).toBe(false);
    expect(layer.freeze()).toBe(layer);
    layer.train().eval().train();
    expect(layer.frozen).toBe(true);
    const x = randn(4 * 3 * 5, 1, 2, 3);
    const y = layer.forward(x, [4, 3, 5]);
    // running statistics 0 and 1: y = x / sqrt(1 + eps)
    for (let i = 0; i < y.length; i++) expect(Math.abs(y[i] - x[i] / Math.sqrt(1 + 1e-5))).toBeLessThanOrEqual(1e-6 * Math.abs(x[i]) + 1e-7);
    expect(layer.numBatchesTracked).toBe(0);
    expect(Array.from(layer.runningMean!)).toEqual([0, 0, 0]);
    // one value per channel is fine: no batch statistics
    expect(layer.forward(Float32Array.of(1, 2, 3), [1, 3]).length).toBe(3);
    // an empty batch is not counted either
    layer.forward(new Float32Array(0), [0, 3]);
    expect(layer.numBatchesTracked).toBe(0);
    expect(layer.backward(new Float32Array(0)).length).toBe(0);
    expect(layer.weightGrad).toBeNull();
    expect(layer.unfreeze()).toBe(layer);
    expect(layer.frozen).toBe(false);
    layer.forward(x, [4, 3, 5]);
    expect(layer.numBatchesTracked).toBe(1);
    expect(Array.from(layer.runningMean!)).not.toEqual([0, 0, 0]);
    expect(() => layer.forward(Float32Array.of(1, 2, 3), [1, 3])).toThrow(/more than 1 value per channel/);
  });

  it("backward follows the forward it differentiates, frozen or not", async () => {
    const bn = await backend(name);
    const x = randn(6 * 2, 2, 1.5, -1);
    const dy = randn(6 * 2, 3);
    const frozen = new bn.BatchNorm(2);
    const plain = new bn.BatchNorm(2).eval();
    frozen.freeze().forward(x, [6, 2]);
    plain.forward(x, [6, 2]);
    frozen.unfreeze(); // after a frozen forward: still the frozen backward
    expect(bits(frozen.backward(dy))).toEqual(bits(plain.backward(dy)));
    expect(frozen.weightGrad).toBeNull();
    frozen.forward(x, [6, 2]); // unfrozen training forward, then frozen: the training backward
    frozen.freeze();
    frozen.backward(dy);
    expect(frozen.weightGrad).not.toBeNull();
  });

  it("the state dict and JSON form are unchanged by freezing", async () => {
    const bn = await backend(name);
    const layer = new bn.BatchNorm(3);
    layer.forward(randn(5 * 3, 4, 2, 1), [5, 3]);
    const sd = JSON.stringify(layer.stateDict());
    const json = JSON.stringify(layer);
    layer.freeze();
    expect(JSON.stringify(layer.stateDict())).toBe(sd);
    expect(JSON.stringify(layer)).toBe(json);
    expect(bn.BatchNorm.fromJSON(json).frozen).toBe(false);
  });

  it("freezing a module without running statistics is a named error; nothing changes", async () => {
    const bn = await backend(name);
    const layer = new bn.BatchNorm(2, { trackRunningStats: false });
    expect(() => layer.freeze()).toThrow(TypeError);
    expect(() => layer.freeze()).toThrow(/^freeze: this module has no running statistics \(created with trackRunningStats: false\)/);
    expect(layer.frozen).toBe(false);
    // a module whose tracking was only switched off keeps its running statistics and can be frozen
    const kept = new bn.BatchNorm(2);
    kept.trackRunningStats = false;
    expect(kept.freeze().frozen).toBe(true);
  });

  it("a frozen forward that throws changes nothing, not even the saved forward", async () => {
    const bn = await backend(name);
    const layer = new bn.BatchNorm(2);
    const x = randn(8, 5);
    layer.forward(x, [4, 2]);
    layer.freeze();
    expect(() => layer.forward(new Float32Array(6), [2, 3])).toThrow(/expected 2 channels/);
    layer.runningVar = new Float32Array(3);
    expect(() => layer.forward(x, [4, 2])).toThrow(/^runningVar: expected length 2/);
    layer.runningVar = new Float32Array(2).fill(1);
    layer.backward(randn(8, 6)); // the training forward's backward
    expect(layer.weightGrad).not.toBeNull();
  });
});
