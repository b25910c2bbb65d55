// Direct tests of backwardReduceChannelsFirst and backwardReduceChannelsLast on every build: sizes
// from the kernels' row loops (channels-first) and rows-at-once and lanes (channels-last), channel
// sub-ranges, sums added into non-zero initial values, partials split by rows or by channels that add
// up to the whole (by channels: the same bits), on offset, 1e37 and 1e-30 data; against float64
// sum(dy) and sum(dy * (x - mean)). Through the fused ReLU, with a forward block from maskCoefficients,
// the sums must be, bit for bit, the plain kernel's sums of dy masked where the normalize kernel's
// output from x with that block is <= 0.
import { describe, expect, it } from "vitest";
import {
  Arena, BUILDS, Checks, KernelTester, type Kind, type Loaded, affine, at, channel, channelOf, coefStride, count, length, load, loopSteps, runAll, sizeCases, stats64,
  subRanges, tensor, withArena,
} from "./harness.js";
import { randn } from "../reference.js";

const CF_STEPS = loopSteps("backward_reduce_channels_first.ts", /q \+ (\d+) <= end/g, 4);
const CL = "backward_reduce_channels_last.ts";
const ROWS_AT_ONCE = loopSteps(CL, /r \+ (\d+) <= rows/g);
const LANES = loopSteps(CL, /ch \+ (\d+) <= c1/g);

type Split = { by: "rows" | "channels"; at: number } | null;

class ReduceTester extends KernelTester {
  private initial = true;
  private splitAt: Split = null;
  private withRelu = false;

  /** Through a fused ReLU: dy gated by the forward output recomputed from x. */
  relu(v: boolean): this {
    this.withRelu = v;
    return this;
  }

  /** Non-zero sums before the call (the kernels add into their outputs), or zeros. */
  initialSums(v: boolean): this {
    this.initial = v;
    return this;
  }

  /** Two calls, rows [0, at) and [at, N) or channels [c0, at) and [at, c1), instead of one. */
  split(by: "rows" | "channels", at: number): this {
    this.splitAt = { by, at };
    return this;
  }

  async test(k: Loaded): Promise<string[]> {
    const g = this.g;
    const [c0, c1] = this.range;
    const cf = g.layout === "channels-first";
    const split = this.splitAt;
    const checks = new Checks(this.label(`initial=${this.initial} split=${split ? `${split.by}@${split.at}` : "none"} relu=${this.withRelu}`));
    const x = tensor(g, this.kindList, this.seedValue);
    const dy = tensor(g, ["normal", "offset", "normal"], this.seedValue + 1000);
    const mean = Array.from({ length: g.c }, (_, ch) => stats64(channel(g, x, ch)).mean);
    const init = this.initial ? Array.from(randn(2 * g.c, this.seedValue + 3), (v) => 1e3 * v) : new Array<number>(2 * g.c).fill(0);
    const inRange = (ch: number) => this.inRange(ch);
    await withArena(k, (a: Arena) => {
      const dyb = a.f32("dy", length(g), dy);
      const xb = a.f32("x", length(g), x, undefined, this.misalignX);
      const mb = a.f64("mean", g.c, mean);
      const mask = this.withRelu ? this.maskBlock(k, a, xb.ptr, mb.ptr, x, dy) : 0;
      // sentinels outside the range; whole-call sums too when split, to compare bits
      const sums = (name: string, from: number) => a.f64(name, g.c, init.slice(from, from + g.c).map((v, ch) => (inRange(ch) ? v : NaN)), inRange);
      const sumDy = sums("sumDy", 0), sumDyXc = sums("sumDyXc", g.c);
      const whole = split?.by === "channels" ? [sums("sumDy whole", 0), sums("sumDyXc whole", g.c)] : null;
      a.seal();
      const call = (r0: number, r1: number, a0: number, a1: number, sd: number, sx: number) => {
        const skip = r0 * g.c * g.s * 4;
        if (cf) k.kernels.backwardReduceChannelsFirst(dyb.ptr + skip, xb.ptr + skip, r1 - r0, g.c, g.s, a0, a1, mb.ptr, sd, sx, mask);
        else k.kernels.backwardReduceChannelsLast(dyb.ptr + skip, xb.ptr + skip, r1 - r0, g.c, a0, a1, mb.ptr, sd, sx, mask);
      };
      if (!split) call(0, g.n, c0, c1, sumDy.ptr, sumDyXc.ptr);
      else if (split.by === "rows") {
        call(0, split.at, c0, c1, sumDy.ptr, sumDyXc.ptr);
        call(split.at, g.n, c0, c1, sumDy.ptr, sumDyXc.ptr);
      } else {
        call(0, g.n, split.at, c1, sumDy.ptr, sumDyXc.ptr);
        call(0, g.n, c0, split.at, sumDy.ptr, sumDyXc.ptr);
        call(0, g.n, c0, c1, whole![0].ptr, whole![1].ptr);
      }
      checks.untouched(a);
      const sd = a.read(sumDy), sx = a.read(sumDyXc);
      if (mask) {
        // the plain kernel, in one call, on dy masked as the forward output says (dy is masked in place by maskBlock)
        const pd = sums("plain sumDy", 0), px = sums("plain sumDyXc", g.c), masked = a.f32("masked dy", length(g), dy);
        if (cf) k.kernels.backwardReduceChannelsFirst(masked.ptr, xb.ptr, g.n, g.c, g.s, c0, c1, mb.ptr, pd.ptr, px.ptr, 0);
        else k.kernels.backwardReduceChannelsLast(masked.ptr, xb.ptr, g.n, g.c, c0, c1, mb.ptr, pd.ptr, px.ptr, 0);
        const wd = a.read(pd), wx = a.read(px);
        for (let ch = c0; ch < c1; ch++) {
          if (!split && (!Object.is(wd[ch], sd[ch]) || !Object.is(wx[ch], sx[ch]))) checks.fail(`channel ${ch}: sums differ from the plain kernel's on the masked dy`);
        }
      }
      for (let ch = c0; ch < c1; ch++) {
        let s1 = init[ch], s2 = init[g.c + ch], a1 = Math.abs(s1), a2 = Math.abs(s2);
        for (let j = 0; j < count(g); j++) {
          const i = at(g, ch, j);
          const t = dy[i] * (x[i] - mean[ch]);
          [s1, s2, a1, a2] = [s1 + dy[i], s2 + t, a1 + Math.abs(dy[i]), a2 + Math.abs(t)];
        }
        // f64 sums of exactly widened values: float64-grade
        checks.close(`sumDy[${ch}]`, sd[ch], s1, 1e-12 * a1);
        checks.close(`sumDyXc[${ch}]`, sx[ch], s2, 1e-12 * a2);
      }
      if (whole) {
        const wd = a.read(whole[0]), wx = a.read(whole[1]);
        for (let ch = c0; ch < c1; ch++) {
          if (!Object.is(wd[ch], sd[ch]) || !Object.is(wx[ch], sx[ch])) checks.fail(`channel ${ch}: split by channels differs from one call`);
        }
      }
    });
    return checks.failures;
  }

  /**
   * The forward block of the range (maskCoefficients from the f64 mean and invstd, with affine
   * parameters); sets dy to 0 in the range where the normalize kernel's output from x is <= 0.
   */
  private maskBlock(k: Loaded, a: Arena, xPtr: number, meanPtr: number, x: Float32Array, dy: Float32Array): number {
    const g = this.g;
    const [c0, c1] = this.range;
    const invstd = Array.from({ length: g.c }, (_, ch) => 1 / Math.sqrt(stats64(channel(g, x, ch)).variance + this.epsValue));
    const { weight, bias } = affine(g.c, this.seedValue);
    const block = a.f32("mask block", k.kernels.COEF_ROWS.value * coefStride(g.c));
    k.kernels.maskCoefficients(g.c, c0, c1, meanPtr, a.f64("invstd", g.c, invstd).ptr, a.f32("weight", g.c, weight).ptr, a.f32("bias", g.c, bias).ptr, block.ptr);
    const yf = a.f32("forward y", length(g));
    if (g.layout === "channels-first") k.kernels.normalizeChannelsFirst(xPtr, yf.ptr, g.n, g.c, g.s, c0, c1, block.ptr, 0);
    else k.kernels.normalizeChannelsLast(xPtr, yf.ptr, g.n, g.c, c0, c1, block.ptr, 0);
    const y = a.read(yf);
    for (let i = 0; i < dy.length; i++) if (this.inRange(channelOf(g, i)) && y[i] <= 0) dy[i] = 0;
    return block.ptr;
  }
}

const tester = () => new ReduceTester();
const DATA: Kind[] = ["normal", "offset", "pilot-miss"];

describe.each(BUILDS)("backward reduce kernels, $label build", (build) => {
  describe("channels-first", () => {
    for (const [name, sizes] of sizeCases(CF_STEPS)) {
      it(`spatial ${name}`, async () => {
        const cases = sizes.map((s) => tester().channelsFirst(2, 3, s).initialSums(s % 2 === 1).kinds(...DATA).seed(s));
        expect(await runAll(await load(build), cases)).toEqual([]);
      });
    }

    it("channel sub-ranges leave the other channels untouched", async () => {
      const cases = subRanges(7).map(([c0, c1], i) => tester().channelsFirst(2, 7, 11).channels(c0, c1).kinds(...DATA).seed(i));
      expect(await runAll(await load(build), cases)).toEqual([]);
    });

    it("partials split by rows add up to the whole", async () => {
      const cases = [1, 2, 3, 4].map((at) => tester().channelsFirst(5, 3, 7).split("rows", at).kinds(...DATA).seed(at));
      expect(await runAll(await load(build), cases)).toEqual([]);
    });

    it("partials split by channels add up to the same bits", async () => {
      const cases = [1, 2, 3, 4, 5, 6].map((at) => tester().channelsFirst(2, 7, 13).split("channels", at).kinds(...DATA).seed(at));
      expect(await runAll(await load(build), cases)).toEqual([]);
    });

    for (const [name, sizes] of sizeCases(CF_STEPS)) {
      it(`through a ReLU, spatial ${name}`, async () => {
        const cases = sizes.map((s) => tester().channelsFirst(2, 3, s).initialSums(s % 2 === 0).kinds(...DATA, "constant").relu(true).seed(s));
        expect(await runAll(await load(build), cases)).toEqual([]);
      });
    }

    it("through a ReLU: sub-ranges, splits by rows and channels, data at 1e37 and 1e-30", async () => {
      const cases = [
        ...subRanges(7).map(([c0, c1], i) => tester().channelsFirst(2, 7, 11).channels(c0, c1).kinds(...DATA).relu(true).seed(i)),
        ...[1, 2, 3, 4].map((at) => tester().channelsFirst(5, 3, 7).split("rows", at).kinds(...DATA).relu(true).seed(at)),
        ...[1, 3, 6].map((at) => tester().channelsFirst(2, 7, 13).split("channels", at).kinds(...DATA).relu(true).seed(at)),
        ...[1, 2, 3].map((m) => tester().channelsFirst(2, 3, 23).misalign(m).kinds("huge", "tiny", "wide").eps(0).relu(true).seed(m)),
      ];
      expect(await runAll(await load(build), cases)).toEqual([]);
    });

    it("unaligned x, data at 1e37 and 1e-30", async () => {
      const cases = [1, 2, 3].map((m) => tester().channelsFirst(2, 3, 23).misalign(m).kinds("huge", "tiny", "wide").seed(m));
      expect(await runAll(await load(build), cases)).toEqual([]);
    });
  });

  describe("channels-last", () => {
    for (const [name, sizes] of sizeCases(ROWS_AT_ONCE)) {
      it(`rows ${name}`, async () => {
        const cases = sizes.map((rows) => tester().channelsLast(rows, 6).initialSums(rows % 2 === 0).kinds(...DATA).seed(rows));
        expect(await runAll(await load(build), cases)).toEqual([]);
      });
    }

    for (const [name, sizes] of sizeCases(LANES)) {
      it(`channels ${name}`, async () => {
        const cases = sizes.map((c) => tester().channelsLast(5, c).initialSums(c % 2 === 0).kinds(...DATA).seed(c));
        expect(await runAll(await load(build), cases)).toEqual([]);
      });
    }

    it("channel sub-ranges leave the other channels untouched", async () => {
      const cases = subRanges(11).map(([c0, c1], i) => tester().channelsLast(7, 11).channels(c0, c1).kinds(...DATA).seed(i));
      expect(await runAll(await load(build), cases)).toEqual([]);
    });

    it("partials split by rows add up to the whole", async () => {
      const cases = Array.from({ length: 8 }, (_, i) => tester().channelsLast(9, 6).split("rows", i + 1).kinds(...DATA).seed(i));
      expect(await runAll(await load(build), cases)).toEqual([]);
    });

    it("partials split by channels add up to the same bits", async () => {
      const cases = Array.from({ length: 10 }, (_, i) => tester().channelsLast(5, 11).split("channels", i + 1).kinds(...DATA).seed(i));
      expect(await runAll(await load(build), cases)).toEqual([]);
    });

    for (const [name, sizes] of [...sizeCases(ROWS_AT_ONCE), ...sizeCases(LANES)]) {
      it(`through a ReLU, rows and channels ${name}`, async () => {
        const cases = sizes.flatMap((v) => [
          tester().channelsLast(v, 6).initialSums(v % 2 === 0).kinds(...DATA, "constant").relu(true).seed(v),
          tester().channelsLast(5, v).kinds(...DATA).relu(true).seed(v + 50),
        ]);
        expect(await runAll(await load(build), cases)).toEqual([]);
      });
    }

    it("through a ReLU: sub-ranges, splits by rows and channels, data at 1e37 and 1e-30 mixed with normal channels", async () => {
      const cases = [
        ...subRanges(11).map(([c0, c1], i) => tester().channelsLast(7, 11).channels(c0, c1).kinds(...DATA).relu(true).seed(i)),
        ...[1, 4, 8].map((at) => tester().channelsLast(9, 6).split("rows", at).kinds(...DATA).relu(true).seed(at)),
        ...[1, 5, 10].map((at) => tester().channelsLast(5, 11).split("channels", at).kinds(...DATA).relu(true).seed(at)),
        ...[1, 4, 7].map((rows) => tester().channelsLast(rows, 9).kinds("huge", "normal", "tiny", "offset", "wide").eps(0).relu(true).seed(rows)),
      ];
      expect(await runAll(await load(build), cases)).toEqual([]);
    });

    it("data at 1e37 and 1e-30 mixed with normal channels", async () => {
      const cases = [1, 4, 7].map((rows) => tester().channelsLast(rows, 9).kinds("huge", "normal", "tiny", "offset", "wide").seed(rows));
      expect(await runAll(await load(build), cases)).toEqual([]);
    });
  });
});
