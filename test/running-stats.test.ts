// RunningStats: exact population statistics over many batches, mergeable and serializable.
import { describe, expect, it } from "vitest";
import { BACKENDS, backend } from "./helpers.js";
import { randn, referenceForward } from "./reference.js";

describe.each(BACKENDS)("RunningStats, %s backend", (name) => {
  it("chunked updates and merges equal one-shot statistics", async () => {
    const bn = await backend(name);
    const [n, c, s] = [12, 5, 33];
    const x = randn(n * c * s, 11, 3, 1e4); // a large offset on purpose
    const whole = new bn.RunningStats(c).update(x, { shape: [n, c, s] });
    const ref = referenceForward(x, { shape: [n, c, s] });
    const a = new bn.RunningStats(c);
    const b = new bn.RunningStats(c);
    for (let i = 0; i < n; i += 3) {
      const chunk = x.subarray(i * c * s, (i + 3) * c * s);
      (i < 6 ? a : b).update(chunk, { shape: [3, c, s] });
    }
    a.merge(b);
    expect(a.count).toBe(n * s);
    expect(whole.count).toBe(n * s);
    for (let k = 0; k < c; k++) {
      expect(a.mean[k]).toBeCloseTo(ref.mean[k], 9);
      expect(whole.mean[k]).toBeCloseTo(ref.mean[k], 9);
      expect(Math.abs(a.variance()[k] - ref.variance[k]) / ref.variance[k]).toBeLessThan(1e-10);
      expect(Math.abs(whole.variance()[k] - ref.variance[k]) / ref.variance[k]).toBeLessThan(1e-10);
      expect(a.variance({ unbiased: true })[k]).toBeCloseTo((ref.variance[k] * n * s) / (n * s - 1), 9);
    }
  });

  it("channels-last input and JSON round trip", async () => {
    const bn = await backend(name);
    const x = randn(4 * 9 * 7, 12);
    const s = new bn.RunningStats(7).update(x, { shape: [4, 9, 7], layout: "channels-last" });
    const ref = referenceForward(x, { shape: [4, 9, 7], layout: "channels-last" });
    for (let k = 0; k < 7; k++) expect(s.mean[k]).toBeCloseTo(ref.mean[k], 12);
    const copy = bn.RunningStats.fromJSON(JSON.parse(JSON.stringify(s)));
    expect(copy.count).toBe(s.count);
    expect(Array.from(copy.mean)).toEqual(Array.from(s.mean));
    expect(Array.from(copy.variance())).toEqual(Array.from(s.variance()));
    expect(() => bn.RunningStats.fromJSON({ numFeatures: 2, count: 1, mean: [1], m2: [0, 0] })).toThrow(/json.mean/);
    expect(() => s.update(x, { shape: [4, 9, 7] })).toThrow(/expected 7 channels/);
  });
});
