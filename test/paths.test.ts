// Every way of passing tensors gives the same answer: plain Float32Arrays (staged in chunks),
// WasmTensors (zero-copy), mixtures of the two, and the module, on random shapes with 0 to 3
// spatial dimensions in both layouts, against the float64 reference. Chunks are 64 bytes here, so
// the staged paths cut every tensor into many blocks.
import { afterAll, describe, expect, it } from "vitest";
import { Engine } from "../src/engine.js";
import { Executor } from "../src/executor.js";
import { BACKENDS, THREADS, backend, ULP } from "./helpers.js";
import { randn, referenceBackward, referenceForward } from "./reference.js";

/** Deterministic pseudo-random integers. */
function rng(seed: number): (n: number) => number {
  let s = seed >>> 0;
  return (n) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % n;
  };
}

function close(a: ArrayLike<number>, b: ArrayLike<number>, rel: number): boolean {
  let scale = 0;
  for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]));
  for (let i = 0; i < b.length; i++) if (!(Math.abs(a[i] - b[i]) <= rel * scale)) return false;
  return a.length === b.length;
}

const defaultChunk = Engine.chunkBytes;
const defaultSplit = Executor.splitBytes;
afterAll(() => {
  Engine.chunkBytes = defaultChunk;
  Executor.splitBytes = defaultSplit;
});

describe.each(BACKENDS.flatMap((b) => THREADS.map((t) => [b, t] as const)))("tensor passing, %s backend, %i thread(s)", (name, threads) => {
  it("copying, zero-copy, mixed and module paths agree with the reference", async () => {
    Engine.chunkBytes = 64;
    Executor.splitBytes = 0; // every call split over the threads
    const bn = await backend(name, threads);
    const rand = rng(2024);
    const misses: string[] = [];
    for (let t = 0; t < 120; t++) {
      const spatial = Array.from({ length: rand(4) }, () => 1 + rand(9));
      const n = 1 + rand(4);
      const c = 1 + rand(12);
      const layout = rand(2) ? "channels-last" : "channels-first";
      const shape = layout === "channels-first" ? [n, c, ...spatial] : [n, ...spatial, c];
      const length = shape.reduce((a, b) => a * b);
      if (length / c < 2) continue;
      const x = randn(length, t + 1, 1 + rand(3), rand(5));
      const dy = randn(length, t + 1000);
      const weight = rand(2) ? randn(c, t + 2000, 0.5, 1) : null;
      const bias = rand(2) ? randn(c, t + 3000) : null;
      const ref = referenceForward(x, { shape, layout, weight, bias });
      const grad = referenceBackward(dy, x, { shape, layout, weight, mean: ref.mean, invstd: ref.invstd });
      const tag = `${layout} [${shape}]`;

      const xt = bn.alloc(length);
      const dyt = bn.alloc(length);
      const out = bn.alloc(length);
      xt.data.set(x);
      dyt.data.set(dy);
      const variants: [string, Float32Array | typeof xt, Float32Array | typeof xt, Float32Array | typeof xt | null][] = [
        ["copying", x, dy, null],
        ["zero-copy", xt, dyt, out],
        ["wasm in, array out", xt, dyt, new Float32Array(length)],
        ["array in, wasm out", x, dy, out],
      ];
      for (const [label, xi, dyi, o] of variants) {
        const r = bn.batchNorm(xi, { shape, layout, weight, bias, out: o });
        if (!close(r.y, ref.y, 8 * ULP * 4)) misses.push(`${tag} ${label}: y`);
        const g = bn.batchNormBackward(dyi, xi, { shape, layout, weight, mean: r.mean, invstd: r.invstd, out: o });
        if (!close(g.dx, grad.dx, 64 * ULP)) misses.push(`${tag} ${label}: dx`);
        if (!close(g.dbias, grad.dbias, 8 * ULP)) misses.push(`${tag} ${label}: dbias`);
      }
      const layer = new bn.BatchNorm(c, { layout, affine: false });
      if (!close(layer.forward(x, shape), referenceForward(x, { shape, layout }).y, 8 * ULP * 4)) misses.push(`${tag} module: y`);
      layer.dispose();
      for (const w of [xt, dyt, out]) w.free();
    }
    expect(misses).toEqual([]);
  });
});
