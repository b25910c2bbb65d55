// Inf and NaN inputs against PyTorch (test/golden-nonfinite/, made by scripts/make_nonfinite_golden.py):
// where torch's float32 answer is not finite, ours is the same non-finite value (NaN, +Inf or -Inf)
// on both backends; where it is finite, ours is within 8 float32 ulps of the float64 answer's
// largest finite magnitude, or twice torch's own float32 error.
import { readFileSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { BACKENDS, backend, f32, f64, memoryShape, ULP, type GoldenCase } from "./helpers.js";

const dir = fileURLToPath(new URL("./golden-nonfinite/", import.meta.url));
const cases: GoldenCase[] = readdirSync(dir)
  .filter((f) => f.endsWith(".json"))
  .sort()
  .map((f) => JSON.parse(readFileSync(dir + f, "utf8")));

function compare(q: string, ours: ArrayLike<number>, torch32: Float64Array, torch64: Float64Array): string[] {
  const misses: string[] = [];
  let top = 0;
  let torchErr = 0;
  for (let i = 0; i < torch64.length; i++) {
    if (Number.isFinite(torch64[i])) top = Math.max(top, Math.abs(torch64[i]));
    if (Number.isFinite(torch32[i]) && Number.isFinite(torch64[i])) torchErr = Math.max(torchErr, Math.abs(torch32[i] - torch64[i]));
  }
  const bar = Math.max(2 * torchErr, 8 * ULP * top);
  for (let i = 0; i < torch32.length; i++) {
    if (!Number.isFinite(torch32[i])) {
      if (!Object.is(ours[i], torch32[i]) && !(Number.isNaN(ours[i]) && Number.isNaN(torch32[i]))) {
        misses.push(`${q}[${i}] = ${ours[i]}, torch ${torch32[i]}`);
      }
    } else if (!(Math.abs(ours[i] - torch64[i]) <= bar)) {
      misses.push(`${q}[${i}] = ${ours[i]}, float64 ${torch64[i]} (bar ${bar})`);
    }
  }
  return misses.slice(0, 3);
}

describe.each(BACKENDS)("Inf and NaN inputs against PyTorch, %s backend", (name) => {
  it.each(cases.map((c) => [c.name, c] as const))("%s", async (_, c) => {
    const bn = await backend(name);
    const { shape, layout } = memoryShape(c);
    const x = f32(c.inputs.x);
    const dy = f32(c.inputs.dy);
    const weight = f32(c.inputs.weight);
    const bias = f32(c.inputs.bias);
    const runningMean = f32(c.inputs.running_mean);
    const runningVar = f32(c.inputs.running_var);
    const training = c.mode === "train";
    const r = bn.batchNorm(x, { shape, layout, weight, bias, runningMean, runningVar, training, momentum: c.momentum ?? undefined });
    const g = training
      ? bn.batchNormBackward(dy, x, { shape, layout, weight, mean: r.mean, invstd: r.invstd })
      : bn.batchNormBackward(dy, x, { shape, layout, weight, training: false, runningMean, runningVar });
    const ours: Record<string, ArrayLike<number>> = { y: r.y, dx: g.dx, dgamma: g.dweight, dbeta: g.dbias };
    if (training) Object.assign(ours, { batch_mean: r.mean, running_mean: runningMean, running_var: runningVar });
    const misses: string[] = [];
    for (const [q, values] of Object.entries(ours)) {
      misses.push(...compare(q, values, f64(c.expected[q]), f64(c.expected_f64[q])));
    }
    expect(misses).toEqual([]);
  });
});
