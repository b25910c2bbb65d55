// PyTorch's reference cases (test/golden/), on both backends, through the module (BatchNorm) and the
// functional API, held to the bar in helpers.ts for every quantity a case gives.
import { describe, expect, it } from "vitest";
import { BACKENDS, backend, checkBar, f32, f64, golden, goldenNames, memoryShape, type GoldenCase } from "./helpers.js";
import { randn, referenceForward } from "./reference.js";

const names = goldenNames();

/** Collects every missed bar of a case, so one failure shows them all. */
function collect(misses: string[], q: string, ours: ArrayLike<number> | null | undefined, c: { expected_f64: GoldenCase["expected_f64"]; torch_f32_max_abs_err: GoldenCase["torch_f32_max_abs_err"] }): void {
  const exp = c.expected_f64[q];
  if (exp === undefined) return;
  if (!ours) {
    misses.push(`${q}: not produced`);
    return;
  }
  const m = checkBar(q, ours, f64(Array.isArray(exp) ? exp : [exp]), c.torch_f32_max_abs_err[q]);
  if (m) misses.push(m);
}

describe.each(BACKENDS)("golden cases, %s backend", (name) => {
  it.each(names)("%s (module)", async (caseName) => {
    const bn = await backend(name);
    const c = golden(caseName);
    const { shape, layout } = memoryShape(c);
    const C = c.layout === "NHWC" ? c.shape[1] : c.shape[1];
    const layer = new bn.BatchNorm(C, { eps: c.eps, momentum: c.momentum, affine: c.affine, trackRunningStats: c.track_running_stats, layout });
    const sd: Record<string, unknown> = {};
    if (c.affine) Object.assign(sd, { weight: f32(c.inputs.gamma), bias: f32(c.inputs.beta) });
    if (c.track_running_stats) {
      Object.assign(sd, { running_mean: f32(c.inputs.running_mean), running_var: f32(c.inputs.running_var), num_batches_tracked: c.inputs.num_batches_tracked });
    }
    layer.loadStateDict(sd);
    const misses: string[] = [];

    if (c.op === "forward_train_error") {
      layer.train(c.mode === "train");
      const before = layer.stateDict();
      expect(() => layer.forward(f32(c.inputs.x), shape)).toThrow(/Expected more than 1 value per channel when training/);
      expect(layer.stateDict()).toEqual(before);
      return;
    }
    const steps = c.steps ?? [{ mode: c.mode, x: c.inputs.x as number[], expected_f64: c.expected_f64, torch_f32_max_abs_err: c.torch_f32_max_abs_err }];
    for (const step of steps) {
      layer.train(step.mode === "train");
      const x = f32(step.x);
      collect(misses, "y", layer.forward(x, shape), step);
      collect(misses, "running_mean", layer.runningMean, step);
      collect(misses, "running_var", layer.runningVar, step);
      if (step.expected_f64.num_batches_tracked !== undefined) {
        expect(layer.numBatchesTracked).toBe(step.expected_f64.num_batches_tracked);
      }
      if (c.op === "backward") {
        collect(misses, "dx", layer.backward(f32(c.inputs.dy)), step);
        collect(misses, "dgamma", layer.weightGrad, step);
        collect(misses, "dbeta", layer.biasGrad, step);
      }
      // the population statistics of the batch, exactly
      if (step.expected_f64.batch_var_biased !== undefined) {
        const s = new bn.RunningStats(C).update(x, { shape, layout });
        collect(misses, "batch_mean", s.mean, step);
        collect(misses, "batch_var_biased", s.variance(), step);
      }
    }
    expect(misses).toEqual([]);
  });

  it.each(names.filter((n) => golden(n).op !== "sequence"))("%s (functional)", async (caseName) => {
    const bn = await backend(name);
    const c = golden(caseName);
    const { shape, layout } = memoryShape(c);
    const training = c.mode === "train";
    const weight = c.affine ? f32(c.inputs.gamma) : null;
    const bias = c.affine ? f32(c.inputs.beta) : null;
    const runningMean = c.track_running_stats ? f32(c.inputs.running_mean) : null;
    const runningVar = c.track_running_stats ? f32(c.inputs.running_var) : null;
    // the functional API takes a number: momentum null is the cumulative factor 1 / (counter + 1)
    const momentum = c.momentum ?? 1 / ((c.inputs.num_batches_tracked as number) + 1);
    const x = f32(c.inputs.x);
    const options = { shape, layout, weight, bias, runningMean, runningVar, training, momentum, eps: c.eps };
    if (c.op === "forward_train_error") {
      const before = [runningMean?.slice() ?? null, runningVar?.slice() ?? null];
      expect(() => bn.batchNorm(x, options)).toThrow(/Expected more than 1 value per channel when training/);
      expect([runningMean, runningVar]).toEqual(before);
      return;
    }
    const misses: string[] = [];
    const r = bn.batchNorm(x, options);
    collect(misses, "y", r.y, c);
    collect(misses, "batch_mean", r.mean, c);
    collect(misses, "save_invstd", r.invstd, c);
    collect(misses, "running_mean", runningMean, c);
    collect(misses, "running_var", runningVar, c);
    if (c.op === "backward") {
      const batchStats = training || !c.track_running_stats;
      const g = bn.batchNormBackward(f32(c.inputs.dy), x, {
        shape, layout, weight, eps: c.eps, training: batchStats,
        ...(batchStats ? { mean: r.mean, invstd: r.invstd } : { runningMean: f32(c.inputs.running_mean), runningVar: f32(c.inputs.running_var) }),
      });
      collect(misses, "dx", g.dx, c);
      if (c.affine) {
        collect(misses, "dgamma", g.dweight, c);
        collect(misses, "dbeta", g.dbias, c);
      }
    }
    expect(misses).toEqual([]);
  });

  // hard_long_reduction (12 MB) regenerated: [4, 2, 192, 192], channel 0 U(0,1), channel 1 100 + 3 N(0,1),
  // with that case's torch float32 errors (shared/golden/hard_long_reduction.json) in the bar.
  it("long reduction (~150K values per channel)", async () => {
    const bn = await backend(name);
    const shape = [4, 2, 192, 192];
    const plane = 192 * 192;
    const normal = randn(4 * plane, 7);
    const x = new Float32Array(4 * 2 * plane);
    let u = 12345;
    for (let n = 0; n < 4; n++) {
      for (let i = 0; i < plane; i++) {
        u = (Math.imul(u, 1103515245) + 12345) >>> 0;
        x[(n * 2) * plane + i] = u / 2 ** 32;
        x[(n * 2 + 1) * plane + i] = 100 + 3 * normal[n * plane + i];
      }
    }
    const weight = f32([0.8855841, 1.1183082]);
    const bias = f32([-0.40344954, 0.26212725]);
    const runningMean = f32([0.2777041, -0.5606714]);
    const runningVar = f32([1.3299309, 1.8929422]);
    const ref = referenceForward(x, { shape, weight, bias, runningMean, runningVar });
    const r = bn.batchNorm(x, { shape, weight, bias, runningMean, runningVar });
    const torchErr = { y: 2.633621788206142e-6, mean: 2.228706662776858e-6, invstd: 7.50012674188838e-8, running_mean: 5.149334256770999e-7, running_var: 1.3640022133998286e-7 };
    const misses = [
      checkBar("y", r.y, ref.y, torchErr.y),
      checkBar("batch_mean", r.mean, ref.mean, torchErr.mean),
      checkBar("save_invstd", r.invstd, ref.invstd, torchErr.invstd),
      checkBar("running_mean", runningMean, ref.runningMean!, torchErr.running_mean),
      checkBar("running_var", runningVar, ref.runningVar!, torchErr.running_var),
    ].filter(Boolean);
    expect(misses).toEqual([]);
  });
});
