// Direct tests of backwardDxChannelsFirst and backwardDxChannelsLast on every build, with blocks from
// splitMeans + backwardCoefficients: spatial sizes from the kernel's row loops and channel counts
// from its lanes (eq/div/lt/gt), channel sub-ranges, in place (dx = dy), with and without weight, the
// scaled forms (data at 1e37, +-1e38, and 1e-30 with eps = 0) mixed with normal channels, eval mode
// (dx = dy * w * invstd through the normalize kernel, as the engine runs it); against float64
// dx = w * invstd * (dy - sum(dy) / n - xhat * dweight / n). Through the fused ReLU (training, and eval
// through backwardDxEval*), with a forward block from maskCoefficients: dy must count as 0 exactly
// where the normalize kernel's output from x with that block is <= 0, so dx must equal, bit for bit,
// the plain kernel's dx for that masked dy (and the float64 formula for it).
import { describe } from "vitest";
import {
  Arena, BUILDS, Checks, KernelTester, type Loaded, affine, at, channel, channelOf, coefStride, count, elementwiseSuite, length,
  loopSteps, stats64, tensor, withArena,
} from "./harness.js";
import { maxAbs } from "../reference.js";

const ROW_STEPS = loopSteps("backward_dx_channels_first.ts", /q \+ (\d+) <= end/g, 4);
const LANES = loopSteps("backward_dx_channels_last.ts", /ch \+ (\d+) <= c1/g);

class DxTester extends KernelTester {
  private isTraining = true;
  private withRelu = false;

  /** Through a fused ReLU: dy gated by the forward output recomputed from x. */
  relu(v: boolean): this {
    this.withRelu = v;
    return this;
  }

  /** Training (statistics of the batch) or eval (statistics constant: dx = dy * w * invstd). */
  training(v: boolean): this {
    this.isTraining = v;
    return this;
  }

  async test(k: Loaded): Promise<string[]> {
    const g = this.g;
    const [c0, c1] = this.range;
    const cf = g.layout === "channels-first";
    const n = count(g);
    const checks = new Checks(this.label(`training=${this.isTraining} relu=${this.withRelu} inplace=${this.inPlace} affine=${this.withAffine} eps=${this.epsValue}`));
    const x = tensor(g, this.kindList, this.seedValue);
    const dy = tensor(g, ["normal"], this.seedValue + 1000);
    const { weight, bias } = affine(g.c, this.seedValue);
    const w = (ch: number) => (this.withAffine ? weight[ch] : 1);
    const mean: number[] = [], variance: number[] = [], invstd: number[] = [];
    for (let ch = 0; ch < g.c; ch++) {
      const st = stats64(channel(g, x, ch));
      mean.push(st.mean);
      variance.push(st.variance);
      invstd.push(1 / Math.sqrt(st.variance + this.epsValue));
    }
    await withArena(k, (a: Arena) => {
      const dxWritable = (i: number) => this.inRange(channelOf(g, i));
      const xb = a.f32("x", length(g), x, undefined, this.misalignX);
      const stride = coefStride(g.c);
      const mb = a.f64("mean", g.c, mean), rb = a.f64("invstd", g.c, invstd);
      const bb = this.withAffine ? a.f32("bias", g.c, bias).ptr : 0;
      // through a ReLU: the forward block of the range, and the forward's output it gates dy by
      const mask = this.withRelu ? a.f32("mask block", k.kernels.COEF_ROWS.value * stride) : null;
      if (mask) {
        k.kernels.maskCoefficients(g.c, c0, c1, mb.ptr, rb.ptr, this.withAffine ? a.f32("weight for mask", g.c, weight).ptr : 0, bb, mask.ptr);
        const yf = a.f32("forward y", length(g));
        if (cf) k.kernels.normalizeChannelsFirst(xb.ptr, yf.ptr, g.n, g.c, g.s, c0, c1, mask.ptr, 0);
        else k.kernels.normalizeChannelsLast(xb.ptr, yf.ptr, g.n, g.c, c0, c1, mask.ptr, 0);
        const y = a.read(yf);
        for (let i = 0; i < dy.length; i++) if (this.inRange(channelOf(g, i)) && y[i] <= 0) dy[i] = 0;
      }
      const sumDy: number[] = [], sumDyXc: number[] = [];
      for (let ch = 0; ch < g.c; ch++) {
        let s1 = 0, s2 = 0;
        for (let j = 0; j < n; j++) [s1, s2] = [s1 + dy[at(g, ch, j)], s2 + dy[at(g, ch, j)] * (x[at(g, ch, j)] - mean[ch])];
        sumDy.push(s1);
        sumDyXc.push(s2);
      }
      const dyb = a.f32("dy", length(g), this.withRelu ? tensor(g, ["normal"], this.seedValue + 1000) : dy, this.inPlace ? dxWritable : undefined);
      const dxb = this.inPlace ? dyb : a.f32("dx", length(g), undefined, dxWritable);
      // only the range's coefficients are set: the rest stay NaN sentinels the kernel must not read
      const coef = a.f32("coef", k.kernels.COEF_ROWS.value * stride);
      const sdb = a.f64("sumDy", g.c, sumDy), sxb = a.f64("sumDyXc", g.c, sumDyXc);
      const wb = this.withAffine ? a.f32("weight", g.c, weight).ptr : 0;
      const dweight = a.f64("dweight", g.c);
      k.kernels.splitMeans(g.c, c0, c1, mb.ptr, coef.ptr);
      k.kernels.backwardCoefficients(g.c, c0, c1, n, sdb.ptr, sxb.ptr, rb.ptr, wb, this.isTraining ? 1 : 0, coef.ptr, dweight.ptr);
      const dw = a.read(dweight);
      for (let ch = c0; ch < c1; ch++) checks.close(`dweight[${ch}]`, dw[ch], sumDyXc[ch] * invstd[ch], 1e-15 * Math.abs(sumDyXc[ch] * invstd[ch]));
      this.checkForms(checks, a.read(coef), variance);
      const run = (from: number, to: number, m: number) => {
        if (this.isTraining) {
          if (cf) k.kernels.backwardDxChannelsFirst(from, xb.ptr, to, g.n, g.c, g.s, c0, c1, coef.ptr, m);
          else k.kernels.backwardDxChannelsLast(from, xb.ptr, to, g.n, g.c, c0, c1, coef.ptr, m);
        } else if (m) {
          if (cf) k.kernels.backwardDxEvalChannelsFirst(from, xb.ptr, to, g.n, g.c, g.s, c0, c1, coef.ptr, m);
          else k.kernels.backwardDxEvalChannelsLast(from, xb.ptr, to, g.n, g.c, c0, c1, coef.ptr, m);
        } else {
          // eval without a ReLU: the block has forward form with mh = 0, b = 0 (see coefficients.ts), on normalize
          if (cf) k.kernels.normalizeChannelsFirst(from, to, g.n, g.c, g.s, c0, c1, coef.ptr, 0);
          else k.kernels.normalizeChannelsLast(from, to, g.n, g.c, c0, c1, coef.ptr, 0);
        }
      };
      // through a ReLU, the plain kernel on the masked dy, which the gated kernel must match bit for bit
      const plain = mask ? a.f32("plain dx", length(g), undefined, dxWritable) : null;
      if (plain) run(a.f32("masked dy", length(g), dy).ptr, plain.ptr, 0);
      a.seal();
      run(dyb.ptr, dxb.ptr, mask ? mask.ptr : 0);
      checks.untouched(a);
      const dx = a.read(dxb);
      if (plain) {
        const want = a.read(plain);
        for (let i = 0; i < dx.length; i++) {
          if (this.inRange(channelOf(g, i)) && !Object.is(dx[i], want[i]) && !(Number.isNaN(dx[i]) && Number.isNaN(want[i]))) {
            checks.fail(`dx[${i}] = ${dx[i]}, the plain kernel on the masked dy gives ${want[i]}`);
          }
        }
      }
      for (let ch = c0; ch < c1; ch++) {
        const k1 = w(ch) * invstd[ch], dwt = sumDyXc[ch] * invstd[ch];
        const want = Float64Array.from({ length: n }, (_, j) => {
          const i = at(g, ch, j);
          if (!this.isTraining) return dy[i] * k1;
          const xhat = (x[i] - mean[ch]) * invstd[ch];
          return k1 * (dy[i] - sumDy[ch] / n - (xhat * dwt) / n);
        });
        // dx sums terms of size |dy * w * invstd| that can cancel to nothing (two values per channel
        // give dx = 0), so its bar is 8 ulps of the largest term, as in test/accuracy.test.ts
        checks.bar(`dx channel ${ch}`, channel(g, dx, ch), want, Math.max(Math.abs(k1) * maxAbs(channel(g, dy, ch)), maxAbs(want)));
      }
    });
    return checks.failures;
  }
}

const tester = () => new DxTester();

/**
 * A normal case and a scaled one per geometry, varying in place / affine / training, each plain and
 * through a ReLU (without affine, a constant channel's outputs are exactly 0).
 */
function both(make: () => DxTester, i: number): DxTester[] {
  return [false, true].flatMap((relu) => [
    make().kinds("normal", "offset", "pilot-miss", "constant").inplace(i % 2 === 0).affine(i % 3 !== 0).training(i % 4 !== 1).relu(relu).seed(i),
    make().kinds("huge", "tiny", "wide", "normal").eps(0).inplace(i % 2 === 1).affine(i % 3 !== 1).training(i % 5 !== 2).relu(relu).seed(i + 100),
  ]);
}

describe.each(BUILDS)("backward dx kernels, $label build", (build) => {
  elementwiseSuite(build, { rowSteps: ROW_STEPS, lanes: LANES, make: tester, variants: both, mixed: (make) => [false, true].flatMap((relu) => [make().relu(relu), make().training(false).relu(relu)]) });
});
