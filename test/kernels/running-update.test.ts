// Direct tests of updateRunning on every build: torch's rule in float64, rounded once to the f32
// running statistics, for momentum factors 0, 0.1, 1/(k + 1) and 1, with and without Bessel's
// correction, over channel sub-ranges that leave the other channels untouched.
import { describe, expect, it } from "vitest";
import { Arena, BUILDS, Checks, KernelTester, type Loaded, ULP32, load, runAll, subRanges, withArena } from "./harness.js";
import { randn } from "../reference.js";

class RunningUpdateTester extends KernelTester {
  private f = 0.1;
  private unbias = 1;

  /** running = (1 - factor) * running + factor * batch. */
  factor(v: number): this {
    this.f = v;
    return this;
  }

  /** The variance's Bessel correction n / (n - 1). */
  correction(v: number): this {
    this.unbias = v;
    return this;
  }

  async test(k: Loaded): Promise<string[]> {
    const c = this.g.c;
    const [c0, c1] = this.range;
    const checks = new Checks(this.label(`factor=${this.f} unbias=${this.unbias}`));
    const z = randn(4 * c, this.seedValue);
    const mean = Array.from({ length: c }, (_, ch) => 1e3 * z[ch]);
    const variance = Array.from({ length: c }, (_, ch) => z[c + ch] ** 2 * 50);
    const rm = Float32Array.from({ length: c }, (_, ch) => z[2 * c + ch]);
    const rv = Float32Array.from({ length: c }, (_, ch) => 1 + z[3 * c + ch] ** 2);
    await withArena(k, (a: Arena) => {
      const inRange = (ch: number) => this.inRange(ch);
      const mb = a.f64("mean", c, mean), vb = a.f64("variance", c, variance);
      const rmb = a.f32("runningMean", c, rm, inRange), rvb = a.f32("runningVar", c, rv, inRange);
      a.seal();
      k.kernels.updateRunning(c0, c1, mb.ptr, vb.ptr, this.unbias, this.f, rmb.ptr, rvb.ptr);
      checks.untouched(a);
      const gm = a.read(rmb), gv = a.read(rvb);
      for (let ch = c0; ch < c1; ch++) {
        const wm = (1 - this.f) * rm[ch] + this.f * mean[ch];
        const wv = (1 - this.f) * rv[ch] + this.f * variance[ch] * this.unbias;
        checks.close(`runningMean[${ch}]`, gm[ch], wm, ULP32 * Math.abs(wm));
        checks.close(`runningVar[${ch}]`, gv[ch], wv, ULP32 * Math.abs(wv));
      }
    });
    return checks.failures;
  }
}

describe.each(BUILDS)("updateRunning, $label build", (build) => {
  it("momentum factors, Bessel's correction, channel sub-ranges", async () => {
    const cases = [1, 2, 3, 4, 5, 8, 9].flatMap((c) =>
      subRanges(c).flatMap(([c0, c1], i) =>
        [0, 0.1, 1 / 3, 1].map((f, j) => new RunningUpdateTester().channelsLast(1, c).channels(c0, c1).factor(f).correction(j % 2 ? 37 / 36 : 2).seed(c * 10 + i)),
      ),
    );
    expect(await runAll(await load(build), cases)).toEqual([]);
  });
});
