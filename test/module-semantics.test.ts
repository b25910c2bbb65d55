// The module behaves as torch.nn.BatchNorm*d (issue 7 items 5-8): an empty training batch is counted,
// trackRunningStats can be switched after construction, gradients accumulate until zeroGrad(), and
// a state dict without num_batches_tracked loads with the counter at 0. Expected values come from
// PyTorch (test/pytorch/module_semantics.json, made by make_fixtures.py) and from the float64 reference.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { BACKENDS, backend, expectClose, f32 } from "./helpers.js";
import { randn, referenceBackward, referenceForward } from "./reference.js";

const torch = JSON.parse(readFileSync(new URL("./pytorch/module_semantics.json", import.meta.url), "utf8"));

describe.each(BACKENDS)("module semantics, %s backend", (name) => {
  it("an empty training batch is counted, so momentum: null then averages over both batches (PyTorch)", async () => {
    const bn = await backend(name);
    const c = torch.empty_batch_counts;
    const layer = new bn.BatchNorm(3, { momentum: null });
    expect(layer.forward(new Float32Array(0), [0, 3, 4]).length).toBe(0);
    expect(layer.numBatchesTracked).toBe(c.after_empty);
    expect(Array.from(layer.runningMean!)).toEqual([0, 0, 0]); // an empty batch leaves the statistics alone
    layer.forward(f32(c.x), c.shape);
    expect(layer.numBatchesTracked).toBe(c.num_batches_tracked);
    expectClose(layer.runningMean!, c.running_mean);
    expectClose(layer.runningVar!, c.running_var);
    // eval mode does not count, empty or not
    layer.eval().forward(new Float32Array(0), [0, 3, 4]);
    expect(layer.numBatchesTracked).toBe(2);
    // without running statistics there is nothing to count
    const untracked = new bn.BatchNorm(3, { trackRunningStats: false });
    untracked.forward(new Float32Array(0), [0, 3]);
    expect(untracked.numBatchesTracked).toBe(0);
  });

  it("an empty forward is a forward: backward gives an empty dx and zero gradients", async () => {
    const bn = await backend(name);
    const layer = new bn.BatchNorm(2);
    layer.forward(new Float32Array(0), [0, 2, 3]);
    expect(layer.backward(new Float32Array(0)).length).toBe(0);
    expect(Array.from(layer.weightGrad!)).toEqual([0, 0]);
    expect(Array.from(layer.biasGrad!)).toEqual([0, 0]);
  });

  it("trackRunningStats switched off keeps, stops updating and counting, and still uses the buffers (PyTorch)", async () => {
    const bn = await backend(name);
    const c = torch.tracking_switched_off;
    const layer = new bn.BatchNorm(2);
    layer.forward(f32(c.xa), c.shape);
    const mean = layer.runningMean!.slice();
    const variance = layer.runningVar!.slice();
    layer.trackRunningStats = false;
    expect(layer.trackRunningStats).toBe(false);
    expectClose(layer.forward(f32(c.xb), c.shape), c.yb); // batch statistics
    expect(Array.from(layer.runningMean!)).toEqual(Array.from(mean));
    expect(Array.from(layer.runningVar!)).toEqual(Array.from(variance));
    expect(layer.numBatchesTracked).toBe(c.num_batches_tracked);
    expect(Object.keys(layer.stateDict())).toEqual(c.state_dict_keys);
    expect(layer.stateDict().num_batches_tracked).toBe(1);
    layer.eval();
    expectClose(layer.forward(f32(c.xc), c.shape), c.yc); // the kept running statistics
    expectClose(layer.runningMean!, c.running_mean);
    // switched back on, it tracks again
    layer.train().trackRunningStats = true;
    layer.forward(f32(c.xb), c.shape);
    expect(layer.numBatchesTracked).toBe(2);
    expect(Array.from(layer.runningMean!)).not.toEqual(Array.from(mean));
    expect(() => {
      layer.trackRunningStats = 1 as never;
    }).toThrow(/^trackRunningStats: expected a boolean, got 1/);
  });

  it("a module whose tracking was switched off still folds with the running statistics it kept", async () => {
    const bn = await backend(name);
    const layer = new bn.BatchNorm(2);
    layer.forward(randn(16, 3, 2, 1), [8, 2]);
    layer.trackRunningStats = false;
    const conv = { weight: Float32Array.of(1, 2, 3, 4), shape: [2, 2] };
    const folded = bn.foldBatchNorm(conv, layer);
    const fromState = bn.foldBatchNorm(conv, { ...layer.stateDict(), running_mean: layer.runningMean!, running_var: layer.runningVar! });
    expect(Array.from(folded.weight)).toEqual(Array.from(fromState.weight));
    expect(Array.from(folded.bias)).toEqual(Array.from(fromState.bias));
  });

  it("trackRunningStats switched on for a module made without running statistics changes nothing", async () => {
    const bn = await backend(name);
    const layer = new bn.BatchNorm(3, { trackRunningStats: false });
    layer.trackRunningStats = true;
    const x = randn(24, 5, 2, 1);
    layer.forward(x, [8, 3]);
    expect(layer.runningMean).toBeNull();
    expect(layer.numBatchesTracked).toBe(0);
    expect(Object.keys(layer.stateDict())).toEqual(["weight", "bias"]);
    // eval mode: batch statistics, as there are no running ones
    expectClose(layer.eval().forward(x, [8, 3]), referenceForward(x, { shape: [8, 3] }).y);
  });

  it("gradients accumulate across backward calls until zeroGrad() sets them to null (PyTorch)", async () => {
    const bn = await backend(name);
    const c = torch.grad_accumulation;
    const layer = new bn.BatchNorm(3);
    layer.weight!.set(c.weight);
    layer.bias!.set(c.bias);
    const x = f32(c.x);
    layer.forward(x, c.shape);
    layer.backward(f32(c.dy1));
    const first = layer.weightGrad!;
    layer.forward(x, c.shape);
    layer.backward(f32(c.dy2));
    expect(layer.weightGrad).toBe(first); // accumulated in place, as .grad
    expectClose(layer.weightGrad!, c.weight_grad_12);
    expectClose(layer.biasGrad!, c.bias_grad_12);
    layer.zeroGrad();
    expect(layer.weightGrad).toBeNull();
    expect(layer.biasGrad).toBeNull();
    expect(c.none_after_zero_grad).toBe(true);
    layer.forward(x, c.shape);
    layer.backward(f32(c.dy3));
    expectClose(layer.weightGrad!, c.weight_grad_3);
    expectClose(layer.biasGrad!, c.bias_grad_3);
  });

  it("accumulates repeated backward calls of one forward, and checks a replaced gradient array", async () => {
    const bn = await backend(name);
    const shape = [4, 2, 3];
    const x = randn(24, 8, 2, 1);
    const dy = randn(24, 9);
    const layer = new bn.BatchNorm(2);
    layer.forward(x, shape);
    layer.backward(dy);
    layer.backward(dy);
    const r = referenceForward(x, { shape });
    const g = referenceBackward(dy, x, { shape, mean: r.mean, invstd: r.invstd });
    expectClose(layer.weightGrad!, Array.from(g.dweight, (v) => 2 * v));
    expectClose(layer.biasGrad!, Array.from(g.dbias, (v) => 2 * v));
    const before = layer.biasGrad!.slice();
    layer.weightGrad = new Float32Array(3);
    expect(() => layer.backward(dy)).toThrow(/^weightGrad: expected length 2, got 3/);
    expect(Array.from(layer.biasGrad!)).toEqual(Array.from(before)); // a call that throws changes nothing
  });

  it("loadStateDict without num_batches_tracked loads with the counter at 0 (PyTorch)", async () => {
    const bn = await backend(name);
    const layer = new bn.BatchNorm(2);
    layer.numBatchesTracked = 7;
    const { num_batches_tracked: _, ...rest } = new bn.BatchNorm(2).stateDict();
    layer.loadStateDict({ ...rest, running_mean: Float32Array.of(0.5, -1) });
    expect(layer.numBatchesTracked).toBe(torch.load_without_counter.num_batches_tracked);
    expect(Array.from(layer.runningMean!)).toEqual([0.5, -1]);
    // a module without running statistics has no counter to load
    const plain = new bn.BatchNorm(2, { trackRunningStats: false });
    expect(() => plain.loadStateDict({ ...rest })).toThrow(/^stateDict: unexpected key 'running_mean'/);
  });
});
