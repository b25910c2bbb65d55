// The accuracy bar on random shapes and hostile data: every quantity of the training forward
// (y, mean, invstd, running statistics), the eval forward and both backward passes, within
// 8 float32 ulps of the quantity's largest float64 magnitude (dx: of the terms it sums,
// max|dy| * max_c(invstd_c * |w_c|)), on both backends, both layouts, and both tensor paths
// (Float32Arrays staged through small chunks, WasmTensors in place). Data: normal with offsets up to
// 1e6, ramps, heavy tails, two-valued channels, zero-mean channels, values up to 1e38 and down to
// 1e-30. Where the float64 answer is finite and within float32's range, ours must be finite.
// With 2 threads every call is split (by channel, rows or images), whatever its size.
import { afterAll, describe, expect, it } from "vitest";
import { Engine } from "../src/engine.js";
import { Executor } from "../src/executor.js";
import { BACKENDS, THREADS, backend, ULP } from "./helpers.js";
import { dims, randn, referenceBackward, referenceForward } from "./reference.js";

const F32_MAX = 3.4028234663852886e38;

/** Deterministic uniform [0, 1). */
function uniform(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

type Make = (i: number, count: number, z: number, u: () => number) => number;

/** Per-channel distributions: value i of `count`, a standard normal z, a uniform source u. */
const DISTRIBUTIONS: [string, (scale: number) => Make][] = [
  ["normal", (s) => (_, __, z) => s * z],
  ["normal + offset", (s) => (_, __, z) => 1e6 * s + z],
  ["offset 1e4", () => (_, __, z) => 1e4 + z],
  ["ramp", (s) => (i, n) => s * (-1 + (2 * i) / Math.max(1, n - 1)) - 7.5e-4 * s],
  ["ramp, offset", (s) => (i, n) => s * (100 + i / n)],
  ["heavy tail", (s) => (_, __, z, u) => (s * z) / Math.max(1e-3, u()) ** 2],
  ["two values", (s) => (i, n) => (i < 0.87 * n ? 1.1 * s : -1.3 * s)],
  ["two values, rare first", (s) => (i, n) => (i < 0.13 * n ? 1.1 * s : -1.3 * s)],
  ["symmetric", (s) => (i) => (i % 2 ? s : -s) * (1 + (i >> 1) * 1e-3)],
  ["huge", () => (_, __, z) => 3e37 * z],
  ["top of range", () => (i) => (i % 2 ? 3.4e38 : -3.4e38) * (i % 3 ? 1 : 0.25)],
  ["near 1e38, offset", () => (_, __, z) => 1e38 + 2e37 * z],
  ["tiny", () => (_, __, z) => 1e-30 * z],
  ["constant", (s) => () => 0.3 * s],
];

interface Trial {
  shape: number[];
  layout: "channels-first" | "channels-last";
  x: Float32Array;
  dy: Float32Array;
  weight: Float32Array | null;
  bias: Float32Array | null;
  label: string;
}

function trial(t: number): Trial {
  const u = uniform(t * 7919 + 13);
  const pick = (n: number) => Math.floor(u() * n);
  const layout = pick(2) ? "channels-last" : "channels-first";
  const c = 1 + pick(6);
  const n = 1 + pick(4);
  const spatial = Array.from({ length: pick(3) }, () => 1 + pick(40));
  let shape = layout === "channels-first" ? [n, c, ...spatial] : [n, ...spatial, c];
  let length = shape.reduce((a, b) => a * b, 1);
  if (length / c < 2) {
    shape = layout === "channels-first" ? [n + 1, c, 3] : [n + 1, 3, c];
    length = shape.reduce((a, b) => a * b, 1);
  }
  const { channel, count } = dims(shape, layout);
  const z = randn(length, t + 1);
  const makes = Array.from({ length: c }, () => {
    const [name, make] = DISTRIBUTIONS[pick(DISTRIBUTIONS.length)];
    const scale = 10 ** (pick(9) - 4);
    return { name, make: make(scale) };
  });
  const seen = new Array<number>(c).fill(0);
  const x = new Float32Array(length);
  for (let i = 0; i < length; i++) {
    const k = channel(i);
    x[i] = makes[k].make(seen[k]++, count, z[i], u);
  }
  const dy = randn(length, t + 5000, 1, pick(2) ? 3 : 0);
  const weight = pick(3) ? randn(c, t + 6000, 1, 0.5) : null;
  const bias = pick(2) ? randn(c, t + 7000) : null;
  return { shape, layout, x, dy, weight, bias, label: `#${t} ${layout} [${shape}] ${makes.map((m) => m.name).join(", ")}` };
}

/** Checks `ours` against the float64 `ref` on the bar with magnitude `scale`; pushes a message on a miss. */
function check(misses: string[], what: string, ours: ArrayLike<number>, ref: ArrayLike<number>, scale?: number): void {
  let top = 0;
  for (let i = 0; i < ref.length; i++) top = Math.max(top, Math.abs(ref[i]));
  if (!(top <= F32_MAX)) return; // the float64 answer itself is beyond float32 (or NaN): nothing to hold
  const bar = 8 * ULP * (scale ?? top);
  let worst = 0;
  for (let i = 0; i < ref.length; i++) {
    if (!Number.isFinite(ours[i])) {
      misses.push(`${what}[${i}] = ${ours[i]}, float64 ${ref[i]}`);
      return;
    }
    worst = Math.max(worst, Math.abs(ours[i] - ref[i]));
  }
  if (worst > bar) misses.push(`${what}: error ${worst.toExponential(3)} = ${(worst / bar).toFixed(2)} x the bar`);
}

const defaultChunk = Engine.chunkBytes;
const defaultSplit = Executor.splitBytes;
afterAll(() => {
  Engine.chunkBytes = defaultChunk;
  Executor.splitBytes = defaultSplit;
});

describe.each(BACKENDS.flatMap((b) => THREADS.map((t) => [b, t] as const)))("accuracy bar on hostile data, %s backend, %i thread(s)", (name, threads) => {
  it.each(["Float32Array (staged in 256-byte chunks)", "WasmTensor (in place)"])("%s", async (path) => {
    const bn = await backend(name, threads);
    Engine.chunkBytes = 256;
    Executor.splitBytes = 0;
    const wasm = path.startsWith("Wasm");
    const misses: string[] = [];
    for (let t = 0; t < 160; t++) {
      const { shape, layout, x, dy, weight, bias, label } = trial(t);
      const c = dims(shape, layout).c;
      const found: string[] = [];
      const tensors: { free(): void }[] = [];
      const put = (a: Float32Array) => {
        if (!wasm) return a;
        const tensor = bn.alloc(a.length);
        tensor.data.set(a);
        tensors.push(tensor);
        return tensor;
      };
      const read = (v: Float32Array | { data: Float32Array }) => ("data" in v ? v.data : v);
      const runningMean = randn(c, t + 8000);
      const runningVar = Float32Array.from(randn(c, t + 9000), (v) => 0.5 + v * v);
      const rm = runningMean.slice();
      const rv = runningVar.slice();
      const momentum = t % 3 ? 0.1 : 0.9;

      // training forward, with the running statistics updated
      const ref = referenceForward(x, { shape, layout, weight, bias, runningMean, runningVar, momentum });
      const xt = put(x);
      const out = wasm ? put(new Float32Array(x.length)) : null;
      const rmt = put(rm);
      const rvt = put(rv);
      const r = bn.batchNorm(xt, { shape, layout, weight, bias, runningMean: rmt, runningVar: rvt, momentum, out });
      check(found, "y", read(r.y), ref.y);
      check(found, "mean", r.mean, ref.mean);
      check(found, "invstd", r.invstd, ref.invstd);
      check(found, "runningMean", read(rmt), ref.runningMean!);
      check(found, "runningVar", read(rvt), ref.runningVar!);

      // backward through the batch statistics; the dx bar is the scale of the terms it sums
      const grad = referenceBackward(dy, x, { shape, layout, weight, mean: ref.mean, invstd: ref.invstd });
      let dxScale = 0;
      for (let k = 0; k < c; k++) dxScale = Math.max(dxScale, ref.invstd[k] * Math.abs(weight ? weight[k] : 1));
      dxScale *= dy.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      const g = bn.batchNormBackward(put(dy), xt, { shape, layout, weight, mean: r.mean, invstd: r.invstd, out });
      check(found, "dx", read(g.dx), grad.dx, dxScale);
      check(found, "dweight", g.dweight, grad.dweight);
      check(found, "dbias", g.dbias, grad.dbias);

      // eval: the running statistics as constants
      const evalRef = referenceForward(x, { shape, layout, weight, bias, runningMean, runningVar, training: false });
      const e = bn.batchNorm(xt, { shape, layout, weight, bias, runningMean, runningVar, training: false, out });
      check(found, "eval y", read(e.y), evalRef.y);
      const evalGrad = referenceBackward(dy, x, { shape, layout, weight, training: false, mean: runningMean, invstd: evalRef.invstd });
      const ge = bn.batchNormBackward(put(dy), xt, { shape, layout, weight, training: false, runningMean, runningVar, out });
      check(found, "eval dx", read(ge.dx), evalGrad.dx);
      for (const tensor of tensors) tensor.free();
      if (found.length) misses.push(`${label}: ${found.join("; ")}`);
    }
    expect(misses).toEqual([]);
  });
});
