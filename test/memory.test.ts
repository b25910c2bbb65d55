// Wasm memory: views that survive growth, zero-copy calls that allocate nothing, freed space reused.
import { describe, expect, it } from "vitest";
import { Engine } from "../src/engine.js";
import { BACKENDS, backend, plainBackend } from "./helpers.js";
import { randn, referenceForward } from "./reference.js";

describe.each(BACKENDS)("memory, %s backend", (name) => {
  // plain first: init() caches a backend per build and thread count (plainBackend's note)
  it.each(["plain", "shared"] as const)("WasmTensor views stay valid after forced growth (%s memory)", async (kind) => {
    const bn = kind === "plain" ? await plainBackend(name) : await backend(name, 2);
    const t = bn.alloc(1000);
    t.data.set(randn(1000, 1));
    const copy = t.data.slice();
    const oldView = t.data;
    const before = bn.memoryBytes;
    const big = bn.alloc(before / 4); // more than is free: memory must grow
    expect(bn.memoryBytes).toBeGreaterThanOrEqual(2 * before); // grows in a large step
    if (kind === "plain") {
      expect(oldView.length).toBe(0); // the old ArrayBuffer was detached
    } else {
      // a shared memory (threaded build) never detaches: the old view keeps its length and data
      expect(oldView.buffer).toBeInstanceOf(SharedArrayBuffer);
      expect(Array.from(oldView)).toEqual(Array.from(copy));
      expect(t.data.buffer).not.toBe(oldView.buffer); // t.data is re-made over the grown buffer
    }
    expect(Array.from(t.data)).toEqual(Array.from(copy));
    const y = bn.batchNorm(t, { shape: [10, 10, 10] }).y;
    const ref = referenceForward(copy, { shape: [10, 10, 10] });
    for (let i = 0; i < 1000; i += 97) expect(y[i]).toBeCloseTo(ref.y[i], 5);
    big.free();
    t.free();
    if (kind === "plain") await bn.terminate(); // out of init()'s cache: the tests below get the default backend
  });

  it("zero-copy calls allocate nothing and can run in place", async () => {
    const bn = await backend(name);
    const shape = [4, 8, 6, 6];
    const x = bn.alloc(4 * 8 * 36);
    const y = bn.alloc(x.length);
    const dx = bn.alloc(x.length);
    x.data.set(randn(x.length, 2, 1, 5));
    const { mean, invstd } = bn.batchNorm(x, { shape, out: y }); // warm up the channel scratch
    const start = bn.memoryStats();
    for (let i = 0; i < 50; i++) {
      bn.batchNorm(x, { shape, out: y });
      bn.batchNormBackward(y, x, { shape, mean, invstd, out: dx });
    }
    expect(bn.memoryStats()).toEqual(start);
    const expected = bn.batchNorm(x.data.slice(), { shape }).y;
    const r = bn.batchNorm(x, { shape, out: x }); // in place
    expect(r.y).toBe(x.data);
    expect(Array.from(x.data)).toEqual(Array.from(expected));
    for (const t of [x, y, dx]) t.free();
  });

  it("in-place calls on plain Float32Arrays, staged through many chunks, match out-of-place ones", async () => {
    const bn = await backend(name);
    const saved = Engine.chunkBytes;
    Engine.chunkBytes = 100; // 25 floats: chunks cut rows, images and channel ranges
    try {
      for (const [shape, layout] of [[[3, 5, 7], "channels-first"], [[3, 7, 5], "channels-last"]] as const) {
        const x = randn(105, 8, 2, 1);
        const dy = randn(105, 9);
        const { y, mean, invstd } = bn.batchNorm(x, { shape, layout });
        const { dx } = bn.batchNormBackward(dy, x, { shape, layout, mean, invstd });
        const xi = x.slice();
        bn.batchNorm(xi, { shape, layout, out: xi });
        expect(Array.from(xi)).toEqual(Array.from(y));
        const dyi = dy.slice();
        bn.batchNormBackward(dyi, x, { shape, layout, mean, invstd, out: dyi });
        expect(Array.from(dyi)).toEqual(Array.from(dx));
      }
    } finally {
      Engine.chunkBytes = saved;
    }
  });

  it("10,000 calls of varying sizes reuse freed space", async () => {
    const bn = await backend(name);
    const layer = new bn.BatchNorm(16);
    const stats = new bn.RunningStats(16);
    const inUse = bn.memoryStats().inUse;
    let bytes = 0;
    for (let i = 0; i < 10_000; i++) {
      const n = 2 + ((i * 7919) % 61);
      const s = 1 + ((i * 104729) % 37);
      const shape = [n, 16, s];
      const x = randn(n * 16 * s, i + 1);
      const layout = i % 2 ? "channels-first" : "channels-last";
      const r = bn.batchNorm(x, { shape, layout });
      bn.batchNormBackward(x, x, { shape, layout, mean: r.mean, invstd: r.invstd });
      if (i % 10 === 0) {
        layer.forward(x, shape);
        layer.backward(x);
        stats.update(x, { shape });
      }
      if (i === 999) bytes = bn.memoryBytes;
    }
    // the largest sizes were all seen in the first 1,000 calls: memory may not grow after that
    expect(bn.memoryBytes).toBe(bytes);
    layer.dispose();
    expect(bn.memoryStats().inUse).toBe(inUse); // every temporary block was returned
  });

  it("the copying API stages Float32Arrays in chunks: big tensors need no wasm memory of their size", async () => {
    const bn = await backend(name);
    const before = bn.memoryBytes;
    expect(before).toBeLessThan(64 << 20);
    const shape = [4, 16, 512, 512]; // 64 MiB
    const x = randn(4 * 16 * 512 * 512, 5, 2, 1);
    const { y, mean } = bn.batchNorm(x, { shape });
    const { dx } = bn.batchNormBackward(x, x, { shape, mean, invstd: bn.batchNorm(x, { shape }).invstd });
    expect(bn.memoryBytes).toBe(before);
    const ref = referenceForward(x.subarray(0, 16 * 512 * 512), { shape: [1, 16, 512, 512] });
    expect(Math.abs(mean[3] - ref.mean[3])).toBeLessThan(0.01); // one image of four: the same distribution
    expect(y.length).toBe(x.length);
    expect(dx.length).toBe(x.length);
  });

  it("a tensor larger than wasm32 memory, where it must live there, is a RangeError and changes nothing", async () => {
    const bn = await backend(name);
    expect(() => bn.alloc(2 ** 31)).toThrow(RangeError);
    expect(() => bn.alloc(2 ** 30 + 1)).toThrow(/do not fit in wasm32 memory/);
    // the module keeps its input in wasm memory for backward: 4.4 GB cannot be held
    const layer = new bn.BatchNorm(2);
    const before = bn.memoryStats();
    const x = new Float32Array(1_100_000_000); // untouched zero pages: cheap to create
    expect(() => layer.forward(x, [550_000_000, 2])).toThrow(/do not fit in wasm32 memory/);
    expect(bn.memoryStats()).toEqual(before);
    expect(layer.numBatchesTracked).toBe(0);
  });
});
