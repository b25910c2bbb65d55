// Inputs that break float32 statistics, on both layouts and backends, against the float64
// reference: these drive the fast path's exact fallback (overflow, underflow, cancellation).
import { describe, expect, it } from "vitest";
import { BACKENDS, backend, ULP } from "./helpers.js";
import { randn, referenceForward } from "./reference.js";

const [N, C, S] = [3, 6, 70];
const length = N * C * S;

/** Channels-first data where channel k is made by `make(k, i)` (i: index within the channel). */
function data(make: (k: number, i: number, z: number) => number): Float32Array {
  const z = randn(length, 99);
  const x = new Float32Array(length);
  for (let n = 0; n < N; n++) for (let k = 0; k < C; k++) for (let i = 0; i < S; i++) {
    const at = (n * C + k) * S + i;
    x[at] = make(k, n * S + i, z[at]);
  }
  return x;
}

const CASES: [string, Float32Array][] = [
  ["offset 1e4", data((_, __, z) => 1e4 + z)],
  ["offset 3e6 (mean near the float32 spacing)", data((k, _, z) => 3e6 + 2 * z + k)],
  ["squares overflow float32 (5e18 scale)", data((k, _, z) => 5e18 * (1 + k / 5) * z)],
  ["variance below 2^-100 (1e-25 scale)", data((k, _, z) => 1e-25 * (k + 1) * z)],
  ["first values far from the mean", data((k, i, z) => (i < 8 ? 1e5 * (k + 1) : 0) + z)],
  ["constant channels", data((k) => 0.1 * (k + 1))],
];

function toChannelsLast(x: Float32Array): Float32Array {
  const out = new Float32Array(length);
  for (let n = 0; n < N; n++) for (let k = 0; k < C; k++) for (let i = 0; i < S; i++) out[(n * S + i) * C + k] = x[(n * C + k) * S + i];
  return out;
}

describe.each(BACKENDS)("hard inputs, %s backend", (name) => {
  it.each(CASES)("%s", async (_, cf) => {
    const bn = await backend(name);
    for (const layout of ["channels-first", "channels-last"] as const) {
      const x = layout === "channels-first" ? cf : toChannelsLast(cf);
      const shape = layout === "channels-first" ? [N, C, S] : [N, S, C];
      const ref = referenceForward(x, { shape, layout });
      const runningMean = new Float32Array(C);
      const runningVar = new Float32Array(C).fill(1);
      const r = bn.batchNorm(x, { shape, layout, runningMean, runningVar });
      // the variance itself: with a tiny eps it decides invstd
      const tiny = bn.batchNorm(x, { shape, layout, eps: 1e-60 }).invstd;
      for (let k = 0; k < C; k++) {
        // the fast path sums d = x - K in f32 blocks: the mean is good to ulps of sigma / sqrt(count)
        const sigma = Math.sqrt(ref.variance[k]);
        expect(Math.abs(r.mean[k] - ref.mean[k])).toBeLessThanOrEqual(8 * ULP * (Math.abs(ref.mean[k]) + sigma / Math.sqrt(N * S)));
        expect(Math.abs(r.invstd[k] - ref.invstd[k])).toBeLessThanOrEqual(ULP * ref.invstd[k]);
        const exactInvstd = ref.variance[k] ? 1 / Math.sqrt(ref.variance[k] + 1e-60) : 1e30;
        expect(Math.abs(tiny[k] - exactInvstd)).toBeLessThanOrEqual(8 * ULP * exactInvstd);
        const unbiased = (ref.variance[k] * N * S) / (N * S - 1);
        expect(Math.abs(runningVar[k] - (0.9 + 0.1 * unbiased))).toBeLessThanOrEqual(2 * ULP * (0.9 + 0.1 * unbiased));
      }
      let worst = 0;
      let scale = 0;
      for (let i = 0; i < length; i++) {
        worst = Math.max(worst, Math.abs(r.y[i] - ref.y[i]));
        scale = Math.max(scale, Math.abs(ref.y[i]));
      }
      expect(worst).toBeLessThanOrEqual(8 * ULP * Math.max(scale, 1e-30));
    }
  });
});
