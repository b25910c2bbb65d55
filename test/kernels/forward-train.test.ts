// Direct tests of forwardTrainChannelsFirst on every build: spatial sizes from the row loops of the
// two kernels it fuses (stats and normalize), several groups (group < C, uneven, one, more than C),
// channel sub-ranges, in place, with and without affine parameters, scaled and non-finite channels;
// mean, variance, invstd and y against float64, the block rows the engine reads back equal to a
// separate forwardCoefficients call, and the same bits whatever the group size. With the fused ReLU:
// the same statistics and block as without, and y < 0 ? 0 : y of the plain call, bit for bit.
import { describe, expect, it } from "vitest";
import {
  Arena, BUILDS, Checks, KernelTester, type Kind, type Loaded, ULP32, affine, channel, channelOf, checkStats, coefRow, coefStride,
  length, load, loopSteps, normalized, runAll, sizeCases, stats64, subRanges, tensor, withArena,
} from "./harness.js";
import { maxAbs } from "../reference.js";

/** Row loops, in floats, of the stats and normalize passes the kernel runs per group. */
const ROW_STEPS = [
  ...new Set([
    ...loopSteps("stats_channels_first.ts", /q \+ (\d+) <= end/g, 4),
    ...loopSteps("normalize_channels_first.ts", /q \+ (\d+) <= end/g, 4),
  ]),
].sort((a, b) => b - a);
/** The block rows the engine reads back after the fused pass. */
const READ_BACK = ["MH", "INVSTD", "ML"].map(coefRow);

interface Outputs {
  y: Float64Array;
  mean: Float64Array;
  variance: Float64Array;
  invstd: Float64Array;
}

class ForwardTrainTester extends KernelTester {
  private groupSize = 2;
  private withRelu = false;

  /** The fused ReLU: y = max(0, y). */
  relu(v: boolean): this {
    this.withRelu = v;
    return this;
  }

  /** The outputs of the last test() call. */
  last: Outputs | null = null;

  group(v: number): this {
    this.groupSize = v;
    return this;
  }

  async test(k: Loaded): Promise<string[]> {
    const g = this.g;
    const [c0, c1] = this.range;
    const checks = new Checks(this.label(`group=${this.groupSize} relu=${this.withRelu} inplace=${this.inPlace} affine=${this.withAffine} eps=${this.epsValue}`));
    const x = tensor(g, this.kindList, this.seedValue);
    const { weight, bias } = affine(g.c, this.seedValue);
    const inRange = (ch: number) => this.inRange(ch);
    await withArena(k, (a: Arena) => {
      const yWritable = (i: number) => inRange(channelOf(g, i));
      const garbage = new Float64Array(g.c).fill(-777.25);
      const xb = a.f32("x", length(g), x, this.inPlace ? yWritable : undefined, this.misalignX);
      const yb = this.inPlace ? xb : a.f32("y", length(g), undefined, yWritable);
      const wb = this.withAffine ? a.f32("weight", g.c, weight).ptr : 0;
      const bb = this.withAffine ? a.f32("bias", g.c, bias).ptr : 0;
      const mean = a.f64("mean", g.c, garbage, inRange);
      const variance = a.f64("variance", g.c, garbage, inRange);
      const invstd = a.f64("invstd", g.c, garbage, inRange);
      const stride = coefStride(g.c);
      const rows = k.kernels.COEF_ROWS.value;
      const coef = a.f32("coef", rows * stride, undefined, (i) => inRange(i % stride));
      const call = (from: number, to: number, m: number, v: number, r: number, block: number, relu: boolean) =>
        k.kernels.forwardTrainChannelsFirst(from, to, g.n, g.c, g.s, c0, c1, this.groupSize, this.epsValue, wb, bb, m, v, r, block, relu ? 1 : 0);
      // with the ReLU, the plain call first, on buffers of its own
      const plain = this.withRelu
        ? { x: a.f32("plain x", length(g), x), y: a.f32("plain y", length(g)), m: a.f64("plain mean", g.c), v: a.f64("plain variance", g.c), r: a.f64("plain invstd", g.c), coef: a.f32("plain coef", rows * stride) }
        : null;
      if (plain) call(plain.x.ptr, plain.y.ptr, plain.m.ptr, plain.v.ptr, plain.r.ptr, plain.coef.ptr, false);
      a.seal();
      call(xb.ptr, yb.ptr, mean.ptr, variance.ptr, invstd.ptr, coef.ptr, this.withRelu);
      checks.untouched(a);
      const out: Outputs = { y: a.read(yb), mean: a.read(mean), variance: a.read(variance), invstd: a.read(invstd) };
      this.last = out;
      if (plain) {
        const same = (what: string, got: Float64Array, want: Float64Array) => {
          for (let i = 0; i < got.length; i++) {
            if (!this.inRange(what === "y" ? channelOf(g, i) : what === "coef" ? i % stride : i)) continue;
            const clip = what === "y" && want[i] < 0 ? 0 : want[i];
            if (!Object.is(got[i], clip) && !(Number.isNaN(got[i]) && Number.isNaN(clip))) checks.fail(`${what}[${i}] = ${got[i]}, plain call ${want[i]}`);
          }
        };
        same("y", out.y, a.read(plain.y));
        same("mean", out.mean, a.read(plain.m));
        same("variance", out.variance, a.read(plain.v));
        same("invstd", out.invstd, a.read(plain.r));
        same("coef", a.read(coef), a.read(plain.coef));
      }
      // the block must be what forwardCoefficients makes of the kernel's own statistics
      const again = a.f32("coef again", rows * stride);
      const invstdAgain = a.f64("invstd again", g.c);
      k.kernels.forwardCoefficients(g.c, c0, c1, mean.ptr, variance.ptr, 0, this.epsValue, wb, bb, again.ptr, invstdAgain.ptr);
      const got = a.read(coef), want = a.read(again);
      for (let ch = c0; ch < c1; ch++) {
        for (const row of READ_BACK) checks.close(`coef row ${row} channel ${ch}`, got[row * stride + ch], want[row * stride + ch], 0);
        checkStats(checks, g, x, ch, { mean: out.mean[ch], variance: out.variance[ch] }, 8 * ULP32);
        const ref = stats64(channel(g, x, ch));
        const r = 1 / Math.sqrt(ref.variance + this.epsValue);
        checks.close(`invstd[${ch}]`, out.invstd[ch], r, 8 * ULP32 * r);
        const w = this.withAffine ? weight[ch] : 1, b = this.withAffine ? bias[ch] : 0;
        const yRef = normalized(g, x, ch, ref.mean, ref.variance, this.epsValue, w, b);
        checks.bar(`y channel ${ch}`, channel(g, out.y, ch), this.withRelu ? yRef.map((v) => Math.max(0, v)) : yRef, maxAbs(yRef));
      }
    });
    return checks.failures;
  }
}

const tester = () => new ForwardTrainTester();

describe.each(BUILDS)("forwardTrainChannelsFirst, $label build", (build) => {
  for (const [name, sizes] of sizeCases(ROW_STEPS)) {
    it(`spatial ${name}`, async () => {
      const cases = sizes.flatMap((s) =>
        [false, true].map((relu) =>
          tester().channelsFirst(2, 5, s).group(1 + (s % 3)).inplace(s % 2 === 0).affine(s % 3 !== 0).kinds("normal", "offset", "pilot-miss").relu(relu).seed(s),
        ),
      );
      expect(await runAll(await load(build), cases)).toEqual([]);
    });
  }

  it("several groups give the same bits as one", async () => {
    const k = await load(build);
    const failures: string[] = [];
    const s = ROW_STEPS[0] + ROW_STEPS[1] + 1;
    for (const [c0, c1] of [[0, 7], [1, 6]]) {
      const one = tester().channelsFirst(3, 7, s).channels(c0, c1).group(7).kinds("normal", "offset", "pilot-miss");
      failures.push(...(await one.test(k)));
      for (const group of [1, 2, 3, 4, 6, 100]) {
        const t = tester().channelsFirst(3, 7, s).channels(c0, c1).group(group).kinds("normal", "offset", "pilot-miss");
        failures.push(...(await t.test(k)));
        for (const q of ["y", "mean", "variance", "invstd"] as const) {
          if (!t.last![q].every((v, i) => Object.is(v, one.last![q][i]))) failures.push(`group ${group} ${[c0, c1]}: ${q} differs from one group`);
        }
      }
    }
    expect(failures).toEqual([]);
  });

  it("channel sub-ranges leave the other channels untouched", async () => {
    const cases = subRanges(7).flatMap(([c0, c1], i) =>
      [false, true].map((inplace) => tester().channelsFirst(2, 7, 21).channels(c0, c1).group(2).inplace(inplace).seed(i).kinds("offset", "normal")),
    );
    expect(await runAll(await load(build), cases)).toEqual([]);
  });

  it("unaligned x", async () => {
    const cases = [1, 2, 3].map((m) => tester().channelsFirst(2, 3, 37).misalign(m).seed(m));
    expect(await runAll(await load(build), cases)).toEqual([]);
  });

  it("scaled (1e37, 1e-30 with eps = 0), constant and non-finite channels", async () => {
    const kinds: Kind[][] = [["huge", "normal", "tiny", "wide"], ["constant", "normal"], ["nonfinite", "offset"]];
    const cases = kinds.flatMap((ks, i) =>
      [[2, 21], [1, 5], [3, 1]].flatMap(([n, s]) =>
        [1, 2, 3, 4].map((seed) =>
          tester().channelsFirst(n, 5, s).kinds(...ks).eps(ks[0] === "constant" ? 1e-5 : 0).group(2).inplace(seed % 2 === 0).relu(seed > 2).seed(seed + 10 * i),
        ),
      ),
    );
    expect(await runAll(await load(build), cases)).toEqual([]);
  });
});
