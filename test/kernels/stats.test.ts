// Direct tests of statsChannelsFirst and statsChannelsLast on every build: sizes from the kernels'
// own loop steps and block constants (XNNPACK's eq/div/lt/gt classes), pilot sample counts, channel
// sub-ranges, with and without `total`, the exact flag, and hostile channels (pilot far from the
// data, 1e37, +-1e38, 1e-30, constant, Inf/NaN), against two-pass float64 statistics.
import { describe, expect, it } from "vitest";
import {
  Arena, BUILDS, Checks, KernelTester, type Kind, type Loaded, checkStats, coefStride, length, load, loopSteps, runAll, sizeCases,
  PILOT_SAMPLES, sourceConstant, subRanges, tensor, ULP32, withArena,
} from "./harness.js";

const CF = "stats_channels_first.ts";
const CL = "stats_channels_last.ts";
/** Row loops of the channels-first kernel, in floats (SIMD 16 then 4, f64 paths 2, then 1). */
const ROW_STEPS = loopSteps(CF, /q \+ (\d+) <= end/g, 4);
/** Rows per f32 block and rows per iteration of the channels-last kernel, and channels per vector. */
const BLOCK_ROWS = sourceConstant(CL, "BLOCK_ROWS");
const ROWS_AT_ONCE = loopSteps(CL, /r \+ (\d+) <= r1/g);
const LANES = loopSteps(CL, /ch \+ (\d+) <= c1/g);

/** Builder-style tester of one stats call (XNNPACK's RSumMicrokernelTester shape). */
/**
 * The kernels' modes (assembly/stats_channels_first.ts) and the variance bar of each: fast within 8
 * f32 ulps; wide (f64 squares, one pass) float64-grade unless cancellation of up to 2^20 (its
 * fallback threshold) scales the f64 rounding; exact (two passes) float64-grade.
 */
const MODES = { fast: 8 * ULP32, wide: 2 ** 20 * 2 ** -52 * 16, exact: 1e-12 } as const;
type Mode = keyof typeof MODES;

class StatsTester extends KernelTester {
  private modeName: Mode = "fast";
  private withTotal = true;

  mode(m: Mode): this {
    this.modeName = m;
    return this;
  }

  total(v: boolean): this {
    this.withTotal = v;
    return this;
  }

  async test(k: Loaded): Promise<string[]> {
    const g = this.g;
    const [c0, c1] = this.range;
    const cf = g.layout === "channels-first";
    const checks = new Checks(this.label(`mode=${this.modeName} total=${this.withTotal}`));
    const x = tensor(g, this.kindList, this.seedValue);
    await withArena(k, (a: Arena) => {
      const inRange = (ch: number) => this.inRange(ch);
      // outputs start as garbage in range: the stats kernels overwrite, they do not add
      const garbage = new Float64Array(g.c).fill(12345.5);
      const xb = a.f32("x", length(g), x, undefined, this.misalignX);
      const mean = a.f64("mean", g.c, garbage, inRange);
      const variance = a.f64("variance", g.c, garbage, inRange);
      const total = this.withTotal ? a.f64("total", g.c, garbage, inRange) : null;
      const stride = coefStride(g.c);
      const work = cf
        ? a.f32("shift", g.c, undefined, inRange)
        : a.f32("work", 2 * stride, undefined, (i) => inRange(i % stride));
      a.seal();
      const e = k.kernels[({ fast: "STATS_FAST", wide: "STATS_WIDE", exact: "STATS_EXACT" } as const)[this.modeName]].value;
      if (cf) k.kernels.statsChannelsFirst(xb.ptr, g.n, g.c, g.s, c0, c1, mean.ptr, variance.ptr, total?.ptr ?? 0, work.ptr, e);
      else k.kernels.statsChannelsLast(xb.ptr, g.n, g.c, c0, c1, mean.ptr, variance.ptr, total?.ptr ?? 0, work.ptr, e);
      checks.untouched(a);
      const m = a.read(mean), v = a.read(variance), t = total ? a.read(total) : null;
      for (let ch = c0; ch < c1; ch++) checkStats(checks, g, x, ch, { mean: m[ch], variance: v[ch], sum: t?.[ch] }, MODES[this.modeName]);
    });
    return checks.failures;
  }
}

const tester = () => new StatsTester();

describe.each(BUILDS)("stats kernels, $label build", (build) => {
  describe("channels-first", () => {
    for (const [name, sizes] of sizeCases(ROW_STEPS)) {
      it(`spatial ${name}`, async () => {
        const cases = sizes.flatMap((s) =>
          (Object.keys(MODES) as Mode[]).map((mode) =>
            tester().channelsFirst(2, 3, s).mode(mode).total(s % 2 === 0).kinds("normal", "offset", "pilot-miss").seed(s),
          ),
        );
        expect(await runAll(await load(build), cases)).toEqual([]);
      });
    }

    it("values per channel below, at and above the pilot's sample count", async () => {
      // as images of one value, and as one image
      const cases = Array.from({ length: 2 * PILOT_SAMPLES + 1 }, (_, i) => i + 1).flatMap((values) => [
        tester().channelsFirst(values, 2, 1).kinds("offset", "pilot-miss").seed(values),
        tester().channelsFirst(1, 2, values).kinds("pilot-miss", "normal").seed(values),
      ]);
      expect(await runAll(await load(build), cases)).toEqual([]);
    });

    it("channel sub-ranges leave the other channels untouched", async () => {
      const s = ROW_STEPS[0] + ROW_STEPS[1] + 1;
      const cases = subRanges(7).flatMap(([c0, c1]) =>
        [false, true].map((total) => tester().channelsFirst(3, 7, s).channels(c0, c1).total(total).kinds("normal", "offset")),
      );
      expect(await runAll(await load(build), cases)).toEqual([]);
    });

    it("unaligned x", async () => {
      const cases = [1, 2, 3].map((shift) => tester().channelsFirst(2, 3, 37).misalign(shift).seed(shift));
      expect(await runAll(await load(build), cases)).toEqual([]);
    });

    it("hostile channels: f64 redo, 1e37, +-1e38, 1e-30, constant, Inf and NaN", async () => {
      const kinds: Kind[] = ["pilot-miss", "huge", "wide", "tiny", "constant", "nonfinite"];
      const cases = kinds.flatMap((kind) =>
        (Object.keys(MODES) as Mode[]).flatMap((mode) =>
          [[2, 37], [3, 5], [1, 1]].flatMap(([n, s]) =>
            [1, 2, 3, 4].map((seed) => tester().channelsFirst(n, 2, s).kinds(kind, "normal").mode(mode).seed(seed)),
          ),
        ),
      );
      expect(await runAll(await load(build), cases)).toEqual([]);
    });
  });

  describe("channels-last", () => {
    for (const [name, sizes] of sizeCases([BLOCK_ROWS, ...ROWS_AT_ONCE])) {
      it(`rows ${name}`, async () => {
        const cases = sizes.flatMap((rows) =>
          (Object.keys(MODES) as Mode[]).map((mode) =>
            tester().channelsLast(rows, 6).mode(mode).total(rows % 2 === 1).kinds("normal", "offset", "pilot-miss").seed(rows),
          ),
        );
        expect(await runAll(await load(build), cases)).toEqual([]);
      });
    }

    for (const [name, sizes] of sizeCases(LANES)) {
      it(`channels ${name}`, async () => {
        const rows = BLOCK_ROWS + ROWS_AT_ONCE[0] + 1;
        const cases = sizes.flatMap((c) =>
          (Object.keys(MODES) as Mode[]).map((mode) => tester().channelsLast(rows, c).mode(mode).kinds("offset", "normal", "pilot-miss").seed(c)),
        );
        expect(await runAll(await load(build), cases)).toEqual([]);
      });
    }

    it("several blocks of rows", async () => {
      const cases = [3 * BLOCK_ROWS + 7, 5 * BLOCK_ROWS].map((rows) => tester().channelsLast(rows, 5).kinds("offset", "pilot-miss", "normal").seed(rows));
      expect(await runAll(await load(build), cases)).toEqual([]);
    });

    it("channel sub-ranges leave the other channels untouched", async () => {
      const cases = subRanges(11).flatMap(([c0, c1]) =>
        [false, true].map((total) => tester().channelsLast(23, 11).channels(c0, c1).total(total).kinds("normal", "offset")),
      );
      expect(await runAll(await load(build), cases)).toEqual([]);
    });

    it("hostile channels mixed with normal ones", async () => {
      const kinds: Kind[] = ["normal", "huge", "tiny", "offset", "constant", "pilot-miss", "nonfinite", "wide"];
      const cases = (Object.keys(MODES) as Mode[]).flatMap((mode) =>
        [1, 2, 37].flatMap((rows) => [1, 2, 3, 4].map((seed) => tester().channelsLast(rows, 9).kinds(...kinds).mode(mode).seed(seed))),
      );
      expect(await runAll(await load(build), cases)).toEqual([]);
    });
  });
});
