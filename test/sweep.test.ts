// Every SIMD tail class against the float64 reference: C and spatial sizes around the 4- and 8-wide
// loops, N = 1..3, both layouts, both backends, with and without affine and running statistics,
// training and eval, forward and backward. x sits on an offset so the mean matters. The copying API
// stages Float32Arrays through chunks: the sweep runs with the default chunk size (one chunk here)
// and with 48-byte chunks, which cut every tensor into row runs, whole images or channel ranges.
import { afterAll, describe, expect, it } from "vitest";
import { Engine } from "../src/engine.js";
import { BACKENDS, backend, ULP } from "./helpers.js";
import { randn, referenceBackward, referenceForward } from "./reference.js";

const SIZES = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 64, 65];
const BATCHES = [1, 2, 3];
const LAYOUTS = ["channels-first", "channels-last"] as const;
const VARIANTS = [
  { affine: true, running: true },
  { affine: true, running: false },
  { affine: false, running: true },
  { affine: false, running: false },
];

/** Largest |ours - ref| relative to `scale`, the magnitude of the terms each output element sums. */
function worst(ours: ArrayLike<number>, ref: ArrayLike<number>, scale: number): number {
  let w = 0;
  for (let i = 0; i < ref.length; i++) w = Math.max(w, Math.abs(ours[i] - ref[i]) / scale);
  return w;
}

const maxOf = (a: ArrayLike<number>, f: (v: number, i: number) => number = Math.abs): number => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, f(a[i], i));
  return m;
};

const CHUNKS = [Engine.chunkBytes, 48];
afterAll(() => {
  Engine.chunkBytes = CHUNKS[0];
});

describe.each(BACKENDS)("tail sweep, %s backend", (name) => {
  describe.each(LAYOUTS.flatMap((layout) => CHUNKS.map((chunk) => [layout, chunk] as const)))("%s, %i-byte chunks", (layout, chunk) => {
    it.each(VARIANTS)("affine $affine, running stats $running", async ({ affine, running }) => {
      Engine.chunkBytes = chunk;
      const bn = await backend(name);
      const failures: string[] = [];
      let cases = 0;
      for (const n of BATCHES) {
        for (const c of SIZES) {
          for (const s of SIZES) {
            const shape = layout === "channels-first" ? [n, c, s] : [n, s, c];
            const length = n * c * s;
            const seed = n * 10007 + c * 101 + s;
            const x = randn(length, seed, 2, 3);
            const dy = randn(length, seed + 1);
            const weight = affine ? randn(c, seed + 2, 0.5, 1) : null;
            const bias = affine ? randn(c, seed + 3) : null;
            const rm = running ? randn(c, seed + 4, 1, 3) : null;
            const rv = running ? randn(c, seed + 5, 0.2, 2) : null;
            const tag = `[${shape}]`;
            for (const training of [true, false]) {
              const batchStats = training || !running;
              if (batchStats && n * s === 1) {
                expect(() => bn.batchNorm(x, { shape, layout, weight, bias, runningMean: rm?.slice(), runningVar: rv?.slice(), training })).toThrow(
                  /Expected more than 1 value per channel/,
                );
                continue;
              }
              cases++;
              const runningMean = rm?.slice() ?? null;
              const runningVar = rv?.slice() ?? null;
              const ref = referenceForward(x, { shape, layout, weight, bias, runningMean: rm, runningVar: rv, training });
              const r = bn.batchNorm(x, { shape, layout, weight, bias, runningMean, runningVar, training });
              // y sums (x - mean) * invstd * w and b: rounding is relative to those terms
              const yScale = maxOf(ref.y, (_, i) => Math.abs(ref.y[i]) + (bias ? maxOf(bias) : 0)) || 1;
              const ey = worst(r.y, ref.y, yScale);
              if (!(ey <= 8 * ULP)) failures.push(`${tag} training=${training} y: ${ey / ULP} ulp`);
              const em = worst(r.mean, ref.mean, maxOf(ref.mean) || 1);
              const ei = worst(r.invstd, ref.invstd, maxOf(ref.invstd));
              if (!(em <= 2 * ULP && ei <= 2 * ULP)) failures.push(`${tag} training=${training} mean ${em / ULP} / invstd ${ei / ULP} ulp`);
              if (training && runningMean) {
                const e1 = worst(runningMean, ref.runningMean!, maxOf(ref.runningMean!));
                const e2 = worst(runningVar!, ref.runningVar!, maxOf(ref.runningVar!));
                if (!(e1 <= 2 * ULP && e2 <= 2 * ULP)) failures.push(`${tag} running stats ${e1 / ULP} / ${e2 / ULP} ulp`);
              }
              const g = bn.batchNormBackward(dy, x, {
                shape, layout, weight, training: batchStats,
                ...(batchStats ? { mean: r.mean, invstd: r.invstd } : { runningMean: rm, runningVar: rv }),
              });
              const gr = referenceBackward(dy, x, { shape, layout, weight, training: batchStats, mean: ref.mean, invstd: ref.invstd });
              // dx = k1 * (dy - mean(dy) - xhat * mean(dy * xhat)): relative to k1 * (|dy| + |those terms|)
              const ch = (i: number) => (layout === "channels-last" ? i % c : Math.floor(i / s) % c);
              const xhat = maxOf(x, (v, i) => Math.abs(v - ref.mean[ch(i)]) * ref.invstd[ch(i)]);
              const k1 = maxOf(ref.invstd, (v, k) => Math.abs((weight ? weight[k] : 1) * v));
              const count = n * s;
              const dxScale = k1 * (maxOf(dy) + maxOf(gr.dbias) / count + (maxOf(gr.dweight) / count) * xhat);
              const edx = worst(g.dx, gr.dx, dxScale);
              if (!(edx <= 8 * ULP)) failures.push(`${tag} training=${training} dx: ${edx / ULP} ulp`);
              // dweight = sum(dy * xhat): relative to sum |dy * xhat|; dbias relative to sum |dy|
              const sumAbs = new Float64Array(c);
              const sumAbsDy = new Float64Array(c);
              for (let i = 0; i < length; i++) {
                sumAbs[ch(i)] += Math.abs(dy[i] * (x[i] - ref.mean[ch(i)]) * ref.invstd[ch(i)]);
                sumAbsDy[ch(i)] += Math.abs(dy[i]);
              }
              const ew = worst(g.dweight, gr.dweight, maxOf(sumAbs) || 1);
              const eb = worst(g.dbias, gr.dbias, maxOf(sumAbsDy));
              if (!(ew <= 8 * ULP && eb <= 8 * ULP)) failures.push(`${tag} training=${training} dweight ${ew / ULP} / dbias ${eb / ULP} ulp`);
            }
          }
        }
      }
      expect(cases).toBeGreaterThan(800);
      expect(failures.slice(0, 20)).toEqual([]);
    });
  });
});
