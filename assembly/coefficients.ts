// Per-channel coefficient blocks that the elementwise kernels read.
//
// A block is rows of f32, each `stride(c)` floats long (C rounded up to 4, so rows stay 16-byte
// aligned for channels-last vector loads):
//   [mh, invstd, ml, a, b, k2]
//   forward:  y  = (x - mh) * a + b                  a = w * invstd, b = bias - ml * a
//   backward: dx = dy * a + (x - mh) * k2 + b        (training; a = k1, b = k3 - ml * k2)
// The mean is carried as an unevaluated f32 pair mh + ml: x - mh is exact when x is near the mean
// (Sterbenz), so a large offset does not cost y its precision, unlike torch's x * alpha + beta'.
// Eval-mode backward dx = dy * k1 is a forward block with mh = 0, b = 0, so it reuses normalize.
import { at4, at8 } from "./widen";

export const ROW_MH = 0;
export const ROW_INVSTD = 1; // f32 invstd, read back by the caller with mh (and ml)
export const ROW_ML = 2;
export const ROW_A = 3;
export const ROW_B = 4;
export const ROW_K2 = 5;

/** Row length in floats for `c` channels. */
@inline export function stride(c: i32): i32 {
  return (c + 3) & ~3;
}

@inline export function rowAt(coef: usize, c: i32, row: i32, ch: i32): usize {
  return coef + at4(row * stride(c) + ch);
}

/** Stores the mean of channel `ch` as mh + ml; returns ml. */
@inline function storeMean(coef: usize, c: i32, ch: i32, mean: f64): f64 {
  const mh = <f32>mean;
  const ml = <f32>(mean - <f64>mh);
  store<f32>(rowAt(coef, c, ROW_MH, ch), mh);
  store<f32>(rowAt(coef, c, ROW_ML, ch), ml);
  return <f64>ml;
}

/**
 * Forward coefficients for channels [c0, c1) from `mean` and biased `variance` (f64 arrays, or f32
 * ones, the running statistics, with `f32Stats`); writes f64 `invstd` (and its f32 rounding in the
 * block). `weight`/`bias` are f32 arrays or 0 for none (weight 1, bias 0).
 */
export function forwardCoefficients(
  c: i32, c0: i32, c1: i32, mean: usize, variance: usize, f32Stats: bool, eps: f64, weight: usize, bias: usize,
  coef: usize, invstd: usize,
): void {
  for (let ch = c0; ch < c1; ch++) {
    const m = f32Stats ? <f64>load<f32>(mean + at4(ch)) : load<f64>(mean + at8(ch));
    const v = f32Stats ? <f64>load<f32>(variance + at4(ch)) : load<f64>(variance + at8(ch));
    const r = 1.0 / Math.sqrt(v + eps);
    const g: f64 = weight ? <f64>load<f32>(weight + at4(ch)) : 1.0;
    const b: f64 = bias ? <f64>load<f32>(bias + at4(ch)) : 0.0;
    const ml = storeMean(coef, c, ch, m);
    const a = g * r;
    store<f32>(rowAt(coef, c, ROW_A, ch), <f32>a);
    store<f32>(rowAt(coef, c, ROW_B, ch), <f32>(b - ml * a));
    store<f32>(rowAt(coef, c, ROW_INVSTD, ch), <f32>r);
    store<f64>(invstd + at8(ch), r);
  }
}

/** Writes the mh/ml rows for channels [c0, c1) from f64 `mean`: what the backward reductions read. */
export function splitMeans(c: i32, c0: i32, c1: i32, mean: usize, coef: usize): void {
  for (let ch = c0; ch < c1; ch++) storeMean(coef, c, ch, load<f64>(mean + at8(ch)));
}

/**
 * Backward coefficients for channels [c0, c1) from the reductions `sumDy` = sum(dy) and
 * `sumDyXc` = sum(dy * (x - mean)) over `count` values (mh/ml rows already split); writes f64
 * `dweight` = invstd * sumDyXc.
 * Training: dx = k1 * (dy - sumDy / n - xhat * dweight / n), xhat = (x - mean) * invstd, k1 = w * invstd.
 * Eval (statistics are constants): dx = k1 * dy, and the block takes forward form.
 */
export function backwardCoefficients(
  c: i32, c0: i32, c1: i32, count: f64, sumDy: usize, sumDyXc: usize, invstd: usize, weight: usize,
  training: bool, coef: usize, dweight: usize,
): void {
  for (let ch = c0; ch < c1; ch++) {
    const r = load<f64>(invstd + at8(ch));
    const g: f64 = weight ? <f64>load<f32>(weight + at4(ch)) : 1.0;
    const dw = load<f64>(sumDyXc + at8(ch)) * r;
    const k1 = g * r;
    store<f64>(dweight + at8(ch), dw);
    store<f32>(rowAt(coef, c, ROW_A, ch), <f32>k1);
    if (training) {
      const k2 = (-k1 * r * dw) / count;
      const k3 = (-k1 * load<f64>(sumDy + at8(ch))) / count;
      const ml = <f64>load<f32>(rowAt(coef, c, ROW_ML, ch));
      store<f32>(rowAt(coef, c, ROW_K2, ch), <f32>k2);
      store<f32>(rowAt(coef, c, ROW_B, ch), <f32>(k3 - ml * k2));
    } else {
      store<f32>(rowAt(coef, c, ROW_MH, ch), 0);
      store<f32>(rowAt(coef, c, ROW_B, ch), 0);
    }
  }
}
