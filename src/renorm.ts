// Batch renormalization, the module's `renorm` option (Ioffe, "Batch Renormalization: Towards Reducing
// Minibatch Dependence in Batch-Normalized Models", 2017). With the batch mean and biased variance,
// sigmaB = sqrt(batchVar + eps) and sigma = sqrt(runningVar + eps) from before this batch's update:
//   r = clip(sigmaB / sigma, 1 / rMax, rMax),  d = clip((batchMean - runningMean) / sigma, -dMax, dMax),
//   y = weight * ((x - batchMean) / sigmaB * r + d) + bias,
// which is plain batch normalization with weight w * r and bias b + w * d. r and d are constants in
// backward: dx is plain training BN's with weight w * r, dweight = r * sum(dy * xhat) + d * sum(dy).
import type { Reweight } from "./engine.js";
import type { RenormChunk } from "./ghost.js";
import type { BatchRenormOptions } from "./validate.js";

/** What renormalize reads when its hook runs (views of wasm memory may move between calls). */
export interface RenormInputs {
  runningMean: Float32Array;
  runningVar: Float32Array;
  weight: Float32Array | null;
  bias: Float32Array | null;
}

/**
 * The engine hook (see Engine.forward) for one renormalized batch: it computes r and d in f64 from the
 * batch statistics and `read()` (called when the hook runs, before the engine updates the running
 * statistics), records them with `record`, and returns weight w * r and bias b + w * d, rounded once
 * to f32. Without affine parameters w is 1 and b is 0.
 */
export function renormalize(
  s: Readonly<Required<BatchRenormOptions>>, eps: number, read: () => RenormInputs, record: (chunk: RenormChunk) => void,
): Reweight {
  return (mean, variance) => {
    const c = mean.length;
    const { runningMean: rm, runningVar: rv, weight, bias } = read();
    const r = new Float64Array(c);
    const d = new Float64Array(c);
    const w = new Float32Array(c);
    const b = new Float32Array(c);
    for (let i = 0; i < c; i++) {
      const sigma = Math.sqrt(rv[i] + eps);
      r[i] = Math.min(Math.max(Math.sqrt(variance[i] + eps) / sigma, 1 / s.rMax), s.rMax);
      d[i] = Math.min(Math.max((mean[i] - rm[i]) / sigma, -s.dMax), s.dMax);
      const wi = weight ? weight[i] : 1;
      w[i] = wi * r[i];
      b[i] = (bias ? bias[i] : 0) + wi * d[i];
    }
    record({ r, d, weight: w, bias: b });
    return { weight: w, bias: b };
  };
}
