// Direct tests of forwardCoefficients, backwardCoefficients, splitMeans and maskCoefficients on every build: the f64
// outputs (invstd, dweight), the block rows as assembly/coefficients.ts documents them (the mean as
// mh + ml, a = w * invstd, b = bias - ml * a; training k1, k2, k3; eval's forward form), the scale
// rule (s = 1, or a power of two exactly when |mean| >= 2^100 or a coefficient leaves
// [2^-100, 2^100]) with its scaled rows, f32 running statistics, absent weight/bias, and channel
// sub-ranges that leave every other byte of the block untouched; maskCoefficients rebuilds, from the
// f64 mean and invstd, the very bits of every row forwardCoefficients wrote that the fused ReLU's mask
// reads.
import { describe, expect, it } from "vitest";
import { Arena, BUILDS, type Buf, Checks, KernelTester, type Loaded, ULP32, affine, coefRow, coefStride, load, runAll, subRanges, withArena } from "./harness.js";

const [MH, INVSTD, ML, A, B, K2, S, MHS, MLS, AS, C2, C3] = ["MH", "INVSTD", "ML", "A", "B", "K2", "S", "MHS", "MLS", "AS", "C2", "C3"].map(coefRow);
const BIG = 2 ** 100;

/**
 * Per-channel (mean, biased variance) pairs: normal, offset, 1e37, 1e-30, a mean past 2^100, zero
 * spread, a spread of 1e38 around 0 (invstd below 2^-100).
 */
const STATS: [number, number][] = [[0.3, 1.2], [1e4, 0.5], [1e37, 1e68], [1e-30, 1e-66], [-2e31, 4], [5, 0], [-0.7, 3e-3], [0.5, 1e76]];
/** The pairs that f32 running statistics can hold. */
const STATS32: [number, number][] = [[0.3, 1.2], [1e4, 0.5], [-2e31, 4], [1e-30, 1e-20], [-0.7, 3e-3]];

/** Whether f64 v would leave the range where f32 keeps its precision (finite, non-zero, outside [2^-100, 2^100]). */
const outside = (v: number): boolean => v !== 0 && Number.isFinite(v) && (Math.abs(v) < 2 ** -100 || Math.abs(v) > BIG);

type Pass = "forward" | "backward" | "split" | "mask";
/** The forward rows maskCoefficients writes. */
const MASK_ROWS = new Set([MH, INVSTD, ML, A, B, S, MHS, AS]);

class CoefficientsTester extends KernelTester {
  private pass: Pass = "forward";
  private runningStats = false;
  private isTraining = true;
  private pairs = STATS;

  forward(f32Stats: boolean): this {
    [this.pass, this.runningStats, this.pairs] = ["forward", f32Stats, f32Stats ? STATS32 : STATS];
    return this;
  }

  backward(training: boolean): this {
    [this.pass, this.isTraining] = ["backward", training];
    return this;
  }

  split(): this {
    this.pass = "split";
    return this;
  }

  /** maskCoefficients from the f64 mean and the invstd forwardCoefficients wrote (from f64 or f32 statistics). */
  mask(f32Stats: boolean): this {
    [this.pass, this.runningStats, this.pairs] = ["mask", f32Stats, f32Stats ? STATS32 : STATS];
    return this;
  }

  async test(k: Loaded): Promise<string[]> {
    const c = this.g.c, n = this.g.n;
    const [c0, c1] = this.range;
    const checks = new Checks(this.label(`pass=${this.pass} f32Stats=${this.runningStats} training=${this.isTraining} affine=${this.withAffine} eps=${this.epsValue}`));
    const pair = (ch: number) => this.pairs[(ch + this.seedValue) % this.pairs.length];
    const mean = Array.from({ length: c }, (_, ch) => pair(ch)[0]);
    const variance = Array.from({ length: c }, (_, ch) => pair(ch)[1]);
    const { weight, bias } = affine(c, this.seedValue);
    const w = (ch: number) => (this.withAffine ? weight[ch] : 1);
    const stride = coefStride(c);
    const rows = k.kernels.COEF_ROWS.value;
    await withArena(k, (a: Arena) => {
      const inRange = (ch: number) => this.inRange(ch);
      const mb = this.runningStats ? a.f32("runningMean", c, mean) : a.f64("mean", c, mean);
      const vb = this.runningStats ? a.f32("runningVar", c, variance) : a.f64("variance", c, variance);
      const m = Array.from(a.view(mb)), v = Array.from(a.view(vb));
      const r = v.map((vv) => 1 / Math.sqrt(vv + this.epsValue));
      const wb = this.withAffine ? a.f32("weight", c, weight).ptr : 0;
      const bb = this.withAffine ? a.f32("bias", c, bias).ptr : 0;
      const rb = a.f64("invstd", c, this.pass === "backward" ? r : undefined, this.pass === "forward" ? inRange : undefined);
      if (this.pass === "mask") return this.checkMask(k, a, checks, mb, vb, wb, bb, rb);
      const sumDy = Array.from({ length: c }, (_, ch) => (ch - 2.5) * n * 0.1), sumDyXc = Array.from({ length: c }, (_, ch) => 0.3 * n * (ch + 1) / r[ch]);
      const sdb = a.f64("sumDy", c, sumDy), sxb = a.f64("sumDyXc", c, sumDyXc);
      const dwb = a.f64("dweight", c, undefined, this.pass === "backward" ? inRange : undefined);
      const coef = a.f32("coef", rows * stride, undefined, (i) => {
        const row = Math.floor(i / stride);
        return inRange(i % stride) && (this.pass !== "split" || row === MH || row === ML);
      });
      if (this.pass === "backward") k.kernels.splitMeans(c, 0, c, mb.ptr, coef.ptr); // the dx pass's set-up
      a.seal();
      if (this.pass === "forward") k.kernels.forwardCoefficients(c, c0, c1, mb.ptr, vb.ptr, this.runningStats ? 1 : 0, this.epsValue, wb, bb, coef.ptr, rb.ptr);
      else if (this.pass === "split") k.kernels.splitMeans(c, c0, c1, mb.ptr, coef.ptr);
      else k.kernels.backwardCoefficients(c, c0, c1, n, sdb.ptr, sxb.ptr, rb.ptr, wb, this.isTraining ? 1 : 0, coef.ptr, dwb.ptr);
      checks.untouched(a);
      const blk = a.read(coef), inv = a.read(rb), dw = a.read(dwb);
      const row = (name: number, ch: number) => blk[name * stride + ch];
      /** Within 1 f32 ulp of f64 v (the block's rows are f64 formulas rounded once). */
      const f32near = (what: string, got: number, want: number) => checks.close(what, got, want, ULP32 * Math.abs(want));
      for (let ch = c0; ch < c1; ch++) {
        // the mean as an unevaluated f32 pair (the backward pass's mh/ml come from splitMeans)
        checks.close(`mh[${ch}]`, row(MH, ch), this.pass === "backward" && !this.isTraining ? 0 : Math.fround(m[ch]), 0);
        if (this.pass !== "backward" || this.isTraining) checks.close(`mh + ml [${ch}]`, row(MH, ch) + row(ML, ch), m[ch], 2 ** -46 * Math.abs(m[ch]));
        if (this.pass === "split") continue;
        const s = row(S, ch);
        const e = Math.log2(Math.abs(s));
        if (!(s === 1 || (s > 0 && Number.isInteger(e) && e >= -126 && e <= 126))) checks.fail(`s[${ch}] = ${s} is not 1 or a power of two`);
        const mh = row(MH, ch), ml = row(ML, ch);
        const mhHuge = Math.abs(mh) >= BIG && Number.isFinite(mh);
        if (this.pass === "forward" || !this.isTraining) {
          // forward form: y = (x - mh) * a + b (eval backward: mh = 0, b = 0, a = k1)
          const av = w(ch) * (this.pass === "forward" ? inv[ch] : r[ch]);
          if (this.pass === "forward") {
            checks.close(`invstd[${ch}]`, inv[ch], r[ch], 2 ** -52 * r[ch]);
            checks.close(`f32 invstd[${ch}]`, row(INVSTD, ch), Math.fround(r[ch]), 0);
          }
          f32near(`a[${ch}]`, row(A, ch), av);
          f32near(`b[${ch}]`, row(B, ch), this.pass === "forward" ? (this.withAffine ? bias[ch] : 0) - ml * av : 0);
          if ((s !== 1) !== (mhHuge || outside(av))) checks.fail(`channel ${ch}: s = ${s} for mh = ${mh}, a = ${av}`);
          if (s !== 1) f32near(`a / s [${ch}]`, row(AS, ch), av / s);
          else checks.close(`a / s [${ch}]`, row(AS, ch), row(A, ch), 0);
          checks.close(`mh * s [${ch}]`, row(MHS, ch), Math.fround(mh * s), 0);
        } else {
          // training: dx = dy * k1 + (x - mh) * k2 + (k3 - ml * k2), k3 = -k1 * c3
          const dwt = sumDyXc[ch] * r[ch], k1 = w(ch) * r[ch], c2 = dwt / n, c3 = sumDy[ch] / n, k2 = -k1 * r[ch] * c2;
          checks.close(`dweight[${ch}]`, dw[ch], dwt, 2 ** -52 * Math.abs(dwt));
          f32near(`k1[${ch}]`, row(A, ch), k1);
          if ((s !== 1) !== (mhHuge || outside(k2) || outside(k1) || outside(r[ch]))) checks.fail(`channel ${ch}: s = ${s} for mh = ${mh}, k1 = ${k1}, k2 = ${k2}, invstd = ${r[ch]}`);
          checks.close(`mh * s [${ch}]`, row(MHS, ch), Math.fround(mh * s), 0);
          if (s === 1) {
            // the plain form's rows (a scaled channel never reads them: they may not fit f32)
            f32near(`k2[${ch}]`, row(K2, ch), k2);
            checks.close(`b[${ch}]`, row(B, ch), -k1 * c3 - ml * k2, ULP32 * (Math.abs(k1 * c3) + Math.abs(ml * k2)));
          } else {
            checks.close(`ml * s [${ch}]`, row(MLS, ch), Math.fround(ml * s), 0);
            f32near(`invstd / s [${ch}]`, row(AS, ch), r[ch] / s);
            f32near(`c2[${ch}]`, row(C2, ch), c2);
            f32near(`c3[${ch}]`, row(C3, ch), c3);
          }
        }
      }
    });
    return checks.failures;
  }

  /**
   * forwardCoefficients over all channels into one block, then maskCoefficients of the range into
   * another from the f64 mean and the invstd it wrote: the forward rows must match bit for bit, and
   * nothing else may be written.
   */
  private checkMask(k: Loaded, a: Arena, checks: Checks, mb: Buf, vb: Buf, wb: number, bb: number, rb: Buf): string[] {
    const c = this.g.c;
    const [c0, c1] = this.range;
    const stride = coefStride(c);
    const rows = k.kernels.COEF_ROWS.value;
    const forward = a.f32("forward block", rows * stride);
    k.kernels.forwardCoefficients(c, 0, c, mb.ptr, vb.ptr, this.runningStats ? 1 : 0, this.epsValue, wb, bb, forward.ptr, rb.ptr);
    const mean64 = a.f64("mean as f64", c, a.view(mb));
    const mask = a.f32("mask block", rows * stride, undefined, (i) => this.inRange(i % stride) && MASK_ROWS.has(Math.floor(i / stride)));
    a.seal();
    k.kernels.maskCoefficients(c, c0, c1, mean64.ptr, rb.ptr, wb, bb, mask.ptr);
    checks.untouched(a);
    const want = a.read(forward), got = a.read(mask);
    for (let ch = c0; ch < c1; ch++) {
      for (const row of MASK_ROWS) {
        const i = row * stride + ch;
        if (!Object.is(got[i], want[i])) checks.fail(`row ${row} channel ${ch}: ${got[i]}, forwardCoefficients wrote ${want[i]}`);
      }
    }
    return checks.failures;
  }
}

const tester = () => new CoefficientsTester();

describe.each(BUILDS)("coefficient kernels, $label build", (build) => {
  const cases = (make: (t: CoefficientsTester, i: number) => CoefficientsTester) =>
    [1, 2, 3, 4, 5, 7, 9].flatMap((c) => subRanges(c).map(([c0, c1], i) => make(tester().channelsLast(37, c).channels(c0, c1).seed(c + i), c + i)));

  it("forwardCoefficients, f64 batch statistics", async () => {
    const all = cases((t, i) => t.forward(false).affine(i % 2 === 0).eps(i % 3 ? 0 : 1e-5));
    expect(await runAll(await load(build), all)).toEqual([]);
  });

  it("forwardCoefficients, f32 running statistics", async () => {
    const all = cases((t, i) => t.forward(true).affine(i % 2 === 1).eps(i % 3 ? 0 : 1e-3));
    expect(await runAll(await load(build), all)).toEqual([]);
  });

  it("backwardCoefficients, training and eval", async () => {
    const all = [true, false].flatMap((training) => cases((t, i) => t.backward(training).affine(i % 2 === 0).eps(i % 3 ? 0 : 1e-5)));
    expect(await runAll(await load(build), all)).toEqual([]);
  });

  it("maskCoefficients rebuilds forwardCoefficients' rows bit for bit, from batch and running statistics", async () => {
    const all = [false, true].flatMap((f32Stats) => cases((t, i) => t.mask(f32Stats).affine(i % 2 === 0).eps(i % 3 ? 0 : 1e-5)));
    expect(await runAll(await load(build), all)).toEqual([]);
  });

  it("splitMeans writes the mh and ml rows of its range only", async () => {
    expect(await runAll(await load(build), cases((t) => t.split()))).toEqual([]);
  });
});
