// Finite differences of the float64 reference forward against our backward: checks the gradient
// formulas themselves, independently of reference.js's backward.
import { describe, expect, it } from "vitest";
import { BACKENDS, backend } from "./helpers.js";
import { randn, referenceForward } from "./reference.js";

/** L = sum(y * dy) with the float64 reference forward. */
function loss(x: ArrayLike<number>, dy: ArrayLike<number>, o: Parameters<typeof referenceForward>[1]): number {
  const { y } = referenceForward(x, o);
  let l = 0;
  for (let i = 0; i < y.length; i++) l += y[i] * dy[i];
  return l;
}

/** Central differences of L in every element of `v` (which `at` plugs into the options). */
function numeric(v: Float32Array, f: (w: Float64Array) => number, h = 1e-4): Float64Array {
  const w = Float64Array.from(v);
  return w.map((_, i) => {
    const old = w[i];
    w[i] = old + h;
    const up = f(w);
    w[i] = old - h;
    const down = f(w);
    w[i] = old;
    return (up - down) / (2 * h);
  });
}

const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol: number) => {
  let scale = 0;
  let worst = 0;
  for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]));
  for (let i = 0; i < b.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst <= tol * scale ? true : `max error ${worst} vs scale ${scale}`;
};

describe.each(BACKENDS)("finite-difference gradients, %s backend", (name) => {
  const cases = [
    { shape: [3, 4, 5], layout: "channels-first" as const },
    { shape: [2, 3, 2, 3], layout: "channels-first" as const },
    { shape: [6, 5], layout: "channels-first" as const },
    { shape: [3, 5, 4], layout: "channels-last" as const },
  ];
  it.each(cases)("$layout $shape", async ({ shape, layout }) => {
    const bn = await backend(name);
    const length = shape.reduce((a, b) => a * b);
    const c = layout === "channels-last" ? shape[shape.length - 1] : shape[1];
    const x = randn(length, 3, 2, 1);
    const dy = randn(length, 4);
    const weight = randn(c, 5, 0.3, 1);
    const bias = randn(c, 6);
    const runningMean = randn(c, 7);
    const runningVar = randn(c, 8, 0.1, 1.5);
    for (const training of [true, false]) {
      const o = { shape, layout, weight, bias, runningMean, runningVar, training };
      const r = bn.batchNorm(x, { ...o, runningMean: runningMean.slice(), runningVar: runningVar.slice() });
      const g = bn.batchNormBackward(dy, x, {
        shape, layout, weight, training,
        ...(training ? { mean: r.mean, invstd: r.invstd } : { runningMean, runningVar }),
      });
      expect(close(g.dx, numeric(x, (w) => loss(w, dy, o)), 1e-5)).toBe(true);
      expect(close(g.dweight, numeric(weight, (w) => loss(x, dy, { ...o, weight: w })), 1e-5)).toBe(true);
      expect(close(g.dbias, numeric(bias, (w) => loss(x, dy, { ...o, bias: w })), 1e-5)).toBe(true);
    }
  });
});
