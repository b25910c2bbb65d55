// Views of the backend's own wasm memory work wherever a Float32Array is accepted, also when the call
// grows memory (issue 7 item 9); a call that throws changes nothing; huge channel counts are named
// RangeErrors (item 10); a forward's mean and invstd have their own ArrayBuffers (item 12).
// Each runs on a plain memory (as in a browser page without cross-origin isolation: growth detaches
// views) and on a shared one (the threaded builds, as Node gets: growth leaves old views valid).
import { describe, expect, it } from "vitest";
import type { Backend, WasmTensor } from "../src/index.js";
import { BACKENDS, backend, expectClose, plainBackend } from "./helpers.js";
import { randn, referenceBackward, referenceForward } from "./reference.js";

/**
 * Fills wasm memory with tensors until no free block of 32 KiB is left, so that the next allocation
 * larger than that (the channel scratch, a chunk buffer, a module's input block) must grow memory.
 */
function fillMemory(bn: Backend): WasmTensor[] {
  const fillers: WasmTensor[] = [];
  for (let free = bn.memoryStats().largestFree; free >= 32768; free = bn.memoryStats().largestFree) fillers.push(bn.alloc(free / 4));
  return fillers;
}

/** A WasmTensor holding `values`, and its `data` view. */
function tensor(bn: Backend, values: Float32Array): [WasmTensor, Float32Array] {
  const t = bn.alloc(values.length);
  t.data.set(values);
  return [t, t.data];
}

// A Float32Array x of 512 KiB: its chunk buffer cannot fit in filled memory, so the call must grow it.
const shape = [4, 8, 64, 64];
const length = 4 * 8 * 4096;

const KINDS = BACKENDS.flatMap((name) => [[name, "plain"], [name, "shared"]] as const);
/** The backend of a memory kind: plain (1 thread, SharedArrayBuffer hidden while it loads) or shared (2 threads). */
const load = (name: (typeof BACKENDS)[number], kind: "plain" | "shared"): Promise<Backend> => (kind === "plain" ? plainBackend(name) : backend(name, 2));

describe.each(KINDS)("state safety, %s backend, %s memory", (name, kind) => {
  it("views of wasm memory work in a call that grows memory; then detached ones get a clear TypeError", async () => {
    const bn = await load(name, kind);
    // forward in place on a Float32Array (out === x), parameters and running statistics as views
    const x = randn(length, 1, 2, 1);
    const [weight, bias, rm, rv] = [randn(8, 2, 0.5, 1), randn(8, 3), randn(8, 4), randn(8, 5, 0.1, 1)];
    const owned = [weight, bias, rm, rv].map((a) => tensor(bn, a));
    const [w, b, m, v] = owned.map(([, view]) => view);
    const fillers = fillMemory(bn);
    let bytes = bn.memoryBytes;
    const xi = x.slice();
    const r = bn.batchNorm(xi, { shape, out: xi, weight: w, bias: b, runningMean: m, runningVar: v });
    expect(bn.memoryBytes).toBeGreaterThan(bytes); // the call grew memory: a plain one detached every view above
    expect(w.length).toBe(kind === "plain" ? 0 : 8);
    expect(r.y).toBe(xi);
    const ref = referenceForward(x, { shape, weight, bias, runningMean: rm, runningVar: rv });
    expectClose(xi, ref.y);
    expectClose(owned[2][0].data, ref.runningMean!);
    expectClose(owned[3][0].data, ref.runningVar!);

    // backward: dy, mean, invstd, weight and out as views; dx comes back as a fresh view of out
    const dy = randn(length, 7);
    const expected = bn.batchNormBackward(dy, x, { shape, weight, mean: r.mean, invstd: r.invstd });
    const more = [dy, r.mean, r.invstd, weight, new Float32Array(length)].map((a) => tensor(bn, a));
    const [d, mean, invstd, w2, out] = more.map(([, view]) => view);
    fillers.push(...fillMemory(bn));
    bytes = bn.memoryBytes;
    const g = bn.batchNormBackward(d, x, { shape, weight: w2, mean, invstd, out });
    expect(bn.memoryBytes).toBeGreaterThan(bytes);
    expect(out.length).toBe(kind === "plain" ? 0 : length);
    expect(g.dx).toEqual(more[4][0].data);
    expectClose(g.dx, expected.dx, 1e-4);
    expectClose(g.dweight, expected.dweight, 1e-4);
    expectClose(g.dbias, expected.dbias, 1e-4);

    const t = more[0][0];
    if (kind === "shared") {
      // shared memory: the views taken before growth still see the same memory, and still work
      expect(Array.from(bn.batchNorm(d, { shape, weight: w, out }).y)).toEqual(Array.from(bn.batchNorm(t, { shape, weight: owned[0][0] }).y));
      expect(Array.from(more[4][0].data)).toEqual(Array.from(bn.batchNorm(t, { shape, weight }).y));
    } else {
      // plain memory: the views taken before growth are detached now; every argument says so by name
      const detached = /re-read WasmTensor\.data/;
      expect(() => bn.batchNorm(d, { shape })).toThrow(TypeError);
      expect(() => bn.batchNorm(d, { shape })).toThrow(/^x: a view of wasm memory that has grown since it was taken \(detached\)/);
      expect(() => bn.batchNorm(t, { shape, weight: w })).toThrow(/^weight: .*detached/);
      expect(() => bn.batchNorm(t, { shape, out })).toThrow(/^out: .*detached/);
      expect(() => bn.batchNorm(t, { shape, runningMean: m, runningVar: v })).toThrow(/^runningMean: .*detached/);
      expect(() => bn.batchNormBackward(t, t, { shape, mean, invstd })).toThrow(/^mean: .*detached/);
      expect(() => bn.batchNormBackward(d, t, { shape, mean: r.mean, invstd: r.invstd })).toThrow(/^dy: .*detached/);
      const layer = new bn.BatchNorm(8);
      expect(() => layer.forward(d, shape)).toThrow(detached);
      layer.bias = b;
      expect(() => layer.forward(t, shape)).toThrow(/^bias: .*detached/);
      expect(() => new bn.RunningStats(8).update(d, { shape })).toThrow(detached);
    }
    for (const [tt] of [...owned, ...more]) tt.free();
    for (const f of fillers) f.free();
  });

  it("async calls resolve views the same way, also when they grow memory", async () => {
    const bn = await load(name, kind);
    const x = randn(length, 19, 2, 1);
    const rm = randn(8, 20);
    const owned = [rm, new Float32Array(8).fill(1), new Float32Array(length)].map((a) => tensor(bn, a));
    const [m, v, out] = owned.map(([, view]) => view);
    const fillers = fillMemory(bn);
    const bytes = bn.memoryBytes;
    const r = await bn.batchNormAsync(x, { shape, runningMean: m, runningVar: v, out });
    expect(bn.memoryBytes).toBeGreaterThan(bytes);
    const ref = referenceForward(x, { shape, runningMean: rm, runningVar: new Float32Array(8).fill(1) });
    expectClose(r.y, ref.y);
    expect(r.y).toEqual(owned[2][0].data);
    expectClose(owned[0][0].data, ref.runningMean!);
    const layer = new bn.BatchNorm(8);
    expectClose(await layer.forwardAsync(owned[2][0].data, shape), referenceForward(ref.y, { shape }).y);
    layer.dispose();
    for (const [t] of owned) t.free();
    for (const f of fillers) f.free();
  });

  it("views outside live WasmTensors are refused, naming the argument", async () => {
    const bn = await load(name, kind);
    const [t] = tensor(bn, randn(64, 12));
    const inside = t.data.subarray(8, 16);
    const outside = new Float32Array(t.data.buffer, 0, 16); // the module's own data, not a tensor
    expect(() => bn.batchNorm(outside, { shape: [2, 8] })).toThrow(/^x: a Float32Array over this backend's wasm memory must lie inside a live WasmTensor/);
    const across = new Float32Array(t.data.buffer, t.ptr + 4 * 60, 8); // runs past the end of t
    expect(() => bn.batchNorm(across, { shape: [2, 4] })).toThrow(/^x: .*inside a live WasmTensor/);
    expect(() => bn.batchNorm(t, { shape: [8, 8], weight: outside.subarray(0, 8) })).toThrow(/^weight: .*inside a live WasmTensor/);
    expect(bn.batchNorm(inside, { shape: [2, 4] }).y.length).toBe(8); // inside: fine
    t.free();
    expect(() => bn.batchNorm(inside, { shape: [2, 4] })).toThrow(/^x: .*inside a live WasmTensor/); // freed
  });

  it("the module: a view as x, parameters, buffers and gradients, in calls that grow memory", async () => {
    const bn = await load(name, kind);
    const x = randn(length, 9, 2, 1);
    const dy = randn(length, 10);
    const plain = new bn.BatchNorm(8);
    plain.weight!.set(randn(8, 11, 0.5, 1));
    const expectedY = plain.forward(x, shape);
    const expectedDx = plain.backward(dy);

    const layer = new bn.BatchNorm(8);
    const owned = [plain.weight!, new Float32Array(8), new Float32Array(8), new Float32Array(8).fill(1), x, new Float32Array(8)].map((a) => tensor(bn, a));
    [layer.weight, layer.bias, layer.runningMean, layer.runningVar] = owned.slice(0, 4).map(([, view]) => view);
    layer.weightGrad = owned[5][1]; // accumulated into, as PyTorch's .grad
    const fillers = fillMemory(bn);
    const bytes = bn.memoryBytes;
    const y = layer.forward(owned[4][1], shape); // copies x into a block of its own: memory grows
    expect(bn.memoryBytes).toBeGreaterThan(bytes);
    expect(Array.from(y)).toEqual(Array.from(expectedY));
    expect(layer.numBatchesTracked).toBe(1);
    expect(Array.from(owned[2][0].data)).toEqual(Array.from(plain.runningMean!));
    if (kind === "plain") {
      // the views the module holds are detached now: re-read them, as the error says
      expect(() => layer.backward(dy)).toThrow(/^weight: .*detached.*re-read WasmTensor\.data/);
      [layer.weight, layer.bias, layer.runningMean, layer.runningVar] = owned.slice(0, 4).map(([t]) => t.data);
      expect(() => layer.backward(dy)).toThrow(/^weightGrad: .*detached/);
      layer.weightGrad = owned[5][0].data;
    }
    expect(Array.from(layer.backward(dy))).toEqual(Array.from(expectedDx));
    expect(Array.from(owned[5][0].data)).toEqual(Array.from(plain.weightGrad!));
    for (const [t] of owned) t.free();
    for (const f of fillers) f.free();
    layer.dispose();
    plain.dispose();
  });

  it("a call that throws changes nothing: the counter, running statistics, grads and the saved forward", async () => {
    const bn = await load(name, kind);
    const s = [4, 3, 5];
    const x = randn(60, 13, 2, 1);
    const dy = randn(60, 14);
    const layer = new bn.BatchNorm(3);
    layer.forward(x, s);
    const dx = layer.backward(dy);
    const snapshot = () => JSON.stringify([layer.stateDict(), layer.weightGrad, layer.biasGrad]);
    const before = snapshot();
    const [t] = tensor(bn, x);
    const freedView = t.data;
    t.free();
    const failing: [string, () => unknown][] = [
      ["wrong channels", () => layer.forward(randn(40, 1), [4, 2, 5])],
      ["freed view", () => layer.forward(freedView, s)],
      ["one value per channel", () => layer.forward(randn(3, 1), [1, 3])],
      // the module keeps its input in wasm memory: 4.4 GB cannot be held, and the last forward must survive
      ["too large for wasm32", () => layer.forward(new Float32Array(1_100_000_001), [366_666_667, 3])],
    ];
    for (const [what, call] of failing) {
      expect(call, what).toThrow();
      expect(snapshot(), what).toBe(before);
      expect(Array.from(layer.backward(dy)), what).toEqual(Array.from(dx)); // the saved forward is intact
      layer.zeroGrad();
      layer.backward(dy);
    }
  });

  it("huge channel counts are RangeErrors naming the argument; an empty batch allocates no scratch", async () => {
    const bn = await load(name, kind);
    expect(() => bn.batchNorm(new Float32Array(0), { shape: [0, 2 ** 40] })).toThrow(RangeError);
    expect(() => bn.batchNorm(new Float32Array(0), { shape: [0, 2 ** 40] })).toThrow(/^shape: \[0, 1099511627776\] has 1099511627776 channels, more than the 16777216/);
    expect(() => bn.batchNorm(new Float32Array(0), { shape: [0, 3, 2 ** 40], layout: "channels-last" })).toThrow(/^shape: /);
    expect(() => bn.batchNormBackward(new Float32Array(0), new Float32Array(0), { shape: [0, 2 ** 40] })).toThrow(/^shape: /);
    expect(() => new bn.BatchNorm(2 ** 40)).toThrow(RangeError);
    expect(() => new bn.BatchNorm(2 ** 40)).toThrow(/^numFeatures: 1099511627776 channels, more than the 16777216 \(2\^24\) supported/);
    expect(() => new bn.RunningStats(2 ** 40)).toThrow(/^numFeatures: .*more than/);
    expect(() => new bn.RunningStats(2 ** 24 + 1)).toThrow(/^numFeatures: /);
    expect(() => bn.RunningStats.fromJSON({ numFeatures: 2 ** 40, count: 0, mean: [], m2: [] })).toThrow(/^json.numFeatures: /);
    expect(() => new bn.RunningStats(8).update(new Float32Array(0), { shape: [0, 2 ** 40] })).toThrow(/^shape: /);

    const c = 2 ** 20;
    const before = bn.memoryStats();
    const r = bn.batchNorm(new Float32Array(0), { shape: [0, c] });
    expect(r.mean.length).toBe(c);
    expect(Number.isNaN(r.invstd[c - 1])).toBe(true);
    const g = bn.batchNormBackward(new Float32Array(0), new Float32Array(0), { shape: [0, c], mean: r.mean, invstd: r.invstd });
    expect(g.dweight.length).toBe(c);
    expect(bn.memoryStats()).toEqual(before); // no per-channel scratch for an empty batch
  });

  it("a forward's mean and invstd have ArrayBuffers of their own", async () => {
    const bn = await load(name, kind);
    const x = randn(2 * 5 * 3, 15, 2, 1);
    const t = bn.alloc(x.length);
    t.data.set(x);
    for (const [input, training] of [[x, true], [t, true], [x, false]] as const) {
      const running = training ? {} : { runningMean: new Float32Array(5), runningVar: new Float32Array(5).fill(1) };
      const { mean, invstd } = bn.batchNorm(input, { shape: [2, 5, 3], training, ...running });
      expect(mean.buffer).not.toBe(invstd.buffer);
      expect(mean.buffer.byteLength).toBe(5 * 4);
      expect(invstd.buffer.byteLength).toBe(5 * 4);
      const invstdBefore = Array.from(invstd);
      const moved = structuredClone(mean, { transfer: [mean.buffer] });
      expect(mean.length).toBe(0); // transferred away
      expect(Array.from(invstd)).toEqual(invstdBefore);
      if (training) {
        // backward still works with the transferred copy (without the forward's extra mean precision)
        const ref = referenceForward(x, { shape: [2, 5, 3] });
        const dy = randn(x.length, 16);
        const { dx } = bn.batchNormBackward(dy, x, { shape: [2, 5, 3], mean: moved, invstd });
        expectClose(dx, referenceBackward(dy, x, { shape: [2, 5, 3], mean: ref.mean, invstd: ref.invstd }).dx, 1e-4);
      }
    }
    t.free();
  });
});
