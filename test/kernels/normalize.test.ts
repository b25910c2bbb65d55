// Direct tests of normalizeChannelsFirst and normalizeChannelsLast on every build, with blocks from
// forwardCoefficients: spatial sizes from the kernel's row loops and channel counts from its lanes
// (eq/div/lt/gt), channel sub-ranges, in place, batch (f64) and running (f32) statistics, with and
// without affine parameters, and the scaled forms (data at 1e37, +-1e38, and 1e-30 with eps = 0), mixed with
// normal channels; against y = (x - mean) / sqrt(var + eps) * w + b in float64. With the fused ReLU
// (about half the outputs clipped), y must be the plain kernel's own output y with y < 0 ? 0 : y, bit for bit.
import { describe } from "vitest";
import {
  Arena, BUILDS, Checks, KernelTester, type Loaded, affine, channel, channelOf, coefStride, elementwiseSuite, length, loopSteps,
  normalized, stats64, tensor, withArena,
} from "./harness.js";
import { maxAbs } from "../reference.js";

/** Row loops of the channels-first kernel in floats (SIMD 16 then 4, scalar 2, scaled 4, then 1). */
const ROW_STEPS = loopSteps("normalize_channels_first.ts", /q \+ (\d+) <= end/g, 4);
/** Channels per vector in the channels-last kernel. */
const LANES = loopSteps("normalize_channels_last.ts", /ch \+ (\d+) <= c1/g);

class NormalizeTester extends KernelTester {
  private useRunning = false;
  private withRelu = false;

  /** The fused ReLU: y = max(0, y). */
  relu(v: boolean): this {
    this.withRelu = v;
    return this;
  }

  /** Eval with f32 running statistics (near the batch's, not equal), instead of the f64 batch ones. */
  running(v: boolean): this {
    this.useRunning = v;
    return this;
  }

  async test(k: Loaded): Promise<string[]> {
    const g = this.g;
    const [c0, c1] = this.range;
    const cf = g.layout === "channels-first";
    const checks = new Checks(this.label(`inplace=${this.inPlace} affine=${this.withAffine} running=${this.useRunning} relu=${this.withRelu} eps=${this.epsValue}`));
    const x = tensor(g, this.kindList, this.seedValue);
    // statistics: f64 of the batch, or f32 running ones a little off the batch's
    const batch = Array.from({ length: g.c }, (_, ch) => stats64(channel(g, x, ch)));
    const mean = batch.map((b) => (this.useRunning ? Math.fround(b.mean + 0.25 * Math.sqrt(b.variance)) : b.mean));
    const variance = batch.map((b) => (this.useRunning ? Math.fround(1.5 * b.variance + 0.01) : b.variance));
    const { weight, bias } = affine(g.c, this.seedValue);
    await withArena(k, (a: Arena) => {
      const yWritable = (i: number) => this.inRange(channelOf(g, i));
      const xb = a.f32("x", length(g), x, this.inPlace ? yWritable : undefined, this.misalignX);
      const yb = this.inPlace ? xb : a.f32("y", length(g), undefined, yWritable);
      const mb = this.useRunning ? a.f32("runningMean", g.c, mean) : a.f64("mean", g.c, mean);
      const vb = this.useRunning ? a.f32("runningVar", g.c, variance) : a.f64("variance", g.c, variance);
      const wb = this.withAffine ? a.f32("weight", g.c, weight).ptr : 0;
      const bb = this.withAffine ? a.f32("bias", g.c, bias).ptr : 0;
      const stride = coefStride(g.c);
      // only the range's coefficients are set: the rest stay NaN sentinels the kernel must not read
      const coef = a.f32("coef", k.kernels.COEF_ROWS.value * stride);
      const invstd = a.f64("invstd", g.c);
      k.kernels.forwardCoefficients(g.c, c0, c1, mb.ptr, vb.ptr, this.useRunning ? 1 : 0, this.epsValue, wb, bb, coef.ptr, invstd.ptr);
      this.checkForms(checks, a.read(coef), variance);
      const run = (from: number, to: number, relu: boolean) => {
        if (cf) k.kernels.normalizeChannelsFirst(from, to, g.n, g.c, g.s, c0, c1, coef.ptr, relu ? 1 : 0);
        else k.kernels.normalizeChannelsLast(from, to, g.n, g.c, c0, c1, coef.ptr, relu ? 1 : 0);
      };
      // the plain kernel's output, to which the ReLU variant must add exactly max(0, y)
      const plainBuf = this.withRelu ? a.f32("plain y", length(g), undefined, yWritable) : null;
      if (plainBuf) run(xb.ptr, plainBuf.ptr, false);
      a.seal();
      run(xb.ptr, yb.ptr, this.withRelu);
      checks.untouched(a);
      const y = a.read(yb);
      const plain = plainBuf ? a.read(plainBuf) : y;
      for (let ch = c0; ch < c1; ch++) {
        const w = this.withAffine ? weight[ch] : 1, b = this.withAffine ? bias[ch] : 0;
        const want = normalized(g, x, ch, mean[ch], variance[ch], this.epsValue, w, b);
        checks.bar(`y channel ${ch}`, channel(g, plain, ch), want);
        if (!this.withRelu) continue;
        checks.bar(`relu y channel ${ch}`, channel(g, y, ch), want.map((v) => Math.max(0, v)), maxAbs(want));
        const got = channel(g, y, ch), before = channel(g, plain, ch);
        for (let j = 0; j < got.length; j++) {
          const clipped = before[j] < 0 ? 0 : before[j]; // a NaN stays NaN, -0 stays -0
          if (!Object.is(got[j], clipped)) checks.fail(`relu y channel ${ch} [${j}] = ${got[j]}, max(0, plain ${before[j]}) = ${clipped}`);
        }
      }
    });
    return checks.failures;
  }
}

const tester = () => new NormalizeTester();

/** A normal case and a scaled case per geometry, varying in place / affine / running, each plain and with the ReLU. */
function both(make: () => NormalizeTester, i: number): NormalizeTester[] {
  return [false, true].flatMap((relu) => [
    make().kinds("normal", "offset").inplace(i % 2 === 0).affine(i % 3 !== 0).running(i % 4 === 1).relu(relu).seed(i),
    make().kinds("huge", "tiny", "wide", "normal").eps(0).inplace(i % 2 === 1).affine(i % 3 !== 1).relu(relu).seed(i + 100),
  ]);
}

describe.each(BUILDS)("normalize kernels, $label build", (build) => {
  elementwiseSuite(build, { rowSteps: ROW_STEPS, lanes: LANES, make: tester, variants: both, mixed: (make) => [make(), make().relu(true)] });
});
