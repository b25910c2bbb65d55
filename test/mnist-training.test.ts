// Training on real digits (the committed asset examples/mnist/data/digits.bin.gz: 4,000 training and
// 1,000 test digits) with the MNIST example's own code, so a change that breaks training with the
// library's BN module is caught: the two claims of Ioffe & Szegedy that hold robustly at this scale
// (examples/mnist, README "What BN does, measured"). Fixed seeds, a few hundred steps: deterministic.
import { readFileSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { init } from "../dist/index.js";
import { decodeDigits, loadDigits } from "../examples/mnist/digits.js";
import { matmulABt, prng, train } from "../examples/mnist/mlp.js";

type Digits = Awaited<ReturnType<typeof loadDigits>>;
const asset = readFileSync(new URL("../examples/mnist/data/digits.bin.gz", import.meta.url));

describe("MNIST example", () => {
  let bn: Awaited<ReturnType<typeof init>>;
  let data: Digits;
  beforeAll(async () => {
    bn = await init();
    data = await loadDigits(asset);
  });

  it("the asset holds 4,000 + 1,000 labelled digits with pixels in [0, 1]", () => {
    expect([data.train.n, data.test.n]).toEqual([4000, 1000]);
    expect(data.train.x.length).toBe(4000 * 784);
    for (const set of [data.train, data.test]) {
      const counts = new Array(10).fill(0);
      for (const label of set.labels) counts[label]++;
      expect(counts.reduce((a, b) => a + b)).toBe(set.n); // every label is a digit 0..9
      expect(Math.min(...counts)).toBeGreaterThan(set.n / 20);
      expect(set.x.every((v) => v >= 0 && v <= 1)).toBe(true);
    }
    expect(() => decodeDigits(new Uint8Array(20))).toThrow(/not a version-1 WBNM digit file/);
  });

  it("matmulABt equals the plain triple loop, sparse and dense, across row and output tails", () => {
    const rand = prng(7);
    for (const [m, k, n] of [[1, 1, 1], [2, 3, 4], [3, 5, 7], [5, 9, 6], [60, 100, 10], [7, 784, 9]]) {
      for (const density of [0.1, 1]) {
        const a = Float32Array.from({ length: m * k }, () => (rand() < density ? rand() - 0.5 : 0));
        const b = Float32Array.from({ length: n * k }, () => rand() - 0.5);
        const c = matmulABt(a, m, k, b, n);
        for (let r = 0; r < m; r++) {
          for (let o = 0; o < n; o++) {
            let s = 0;
            for (let j = 0; j < k; j++) s += a[r * k + j] * b[o * k + j];
            expect(c[r * n + o]).toBe(Math.fround(s));
          }
        }
      }
    }
  });

  const run = (batchNorm: boolean, lr: number, steps: number) =>
    train(bn, data, { batchNorm, lr, steps, seed: 1, thresholds: [0.8] });

  it("with BN the sigmoid MLP reaches 80% test accuracy within 100 steps; without, it does not (learning rate 2)", () => {
    const withBn = run(true, 2, 100);
    const plain = run(false, 2, 100);
    expect(withBn.stepsTo["0.8"]).not.toBeNull();
    expect(plain.stepsTo["0.8"]).toBeNull();
    expect(plain.finalTest).toBeLessThan(0.5);
  });

  it("at learning rate 8 the plain sigmoid MLP stays near chance while the BN one trains", () => {
    const plain = run(false, 8, 200);
    const withBn = run(true, 8, 200);
    expect(Math.max(...plain.curve.map((p) => p.test))).toBeLessThan(0.2);
    expect(withBn.finalTest).toBeGreaterThan(0.75);
    expect(withBn.finalTrain).toBeGreaterThan(0.75);
  });
});
