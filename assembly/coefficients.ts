// Per-channel coefficient blocks that the elementwise kernels read.
//
// A block is rows of f32, each `stride(c)` floats long (C rounded up to 4, so rows stay 16-byte
// aligned for channels-last vector loads):
//   forward:  [mh, ml, a, b]          y  = ((x - mh) - ml) * a + b
//   backward: [mh, ml, k1, k3, k2]    dx = dy * k1 + k3 + ((x - mh) - ml) * k2
// The mean is carried as an unevaluated f32 pair mh + ml: x - mh is exact when x is near the mean
// (Sterbenz), so a large offset does not cost y its precision, unlike torch's x * alpha + beta'.
// The first four backward rows in eval form (mh = ml = k3 = 0) are a forward block, so eval-mode
// dx = dy * k1 reuses the normalize kernels.
import { at4, at8 } from "./widen";

export const ROW_MH = 0;
export const ROW_ML = 1;
export const ROW_A = 2; // forward scale; backward k1
export const ROW_B = 3; // forward shift; backward k3
export const ROW_K2 = 4;

/** Row length in floats for `c` channels. */
@inline export function stride(c: i32): i32 {
  return (c + 3) & ~3;
}

@inline export function rowAt(coef: usize, c: i32, row: i32, ch: i32): usize {
  return coef + at4(row * stride(c) + ch);
}

/** Stores the mean of channel `ch` as mh + ml. */
@inline export function storeMean(coef: usize, c: i32, ch: i32, mean: f64): void {
  const mh = <f32>mean;
  store<f32>(rowAt(coef, c, ROW_MH, ch), mh);
  store<f32>(rowAt(coef, c, ROW_ML, ch), <f32>(mean - <f64>mh));
}

/**
 * Forward coefficients of one channel from its mean and biased variance; returns invstd.
 * `weight`/`bias` are f32 arrays or 0 for none (weight 1, bias 0).
 */
@inline export function storeForward(
  coef: usize, c: i32, ch: i32, mean: f64, variance: f64, eps: f64, weight: usize, bias: usize,
): f64 {
  const invstd = 1.0 / Math.sqrt(variance + eps);
  const g: f64 = weight ? <f64>load<f32>(weight + at4(ch)) : 1.0;
  const b: f32 = bias ? load<f32>(bias + at4(ch)) : 0;
  storeMean(coef, c, ch, mean);
  store<f32>(rowAt(coef, c, ROW_A, ch), <f32>(g * invstd));
  store<f32>(rowAt(coef, c, ROW_B, ch), b);
  return invstd;
}

/**
 * Forward coefficients for channels [c0, c1) from f64 `mean` and `variance`; writes f64 `invstd`.
 */
export function forwardCoefficients(
  c: i32, c0: i32, c1: i32, mean: usize, variance: usize, eps: f64, weight: usize, bias: usize,
  coef: usize, invstd: usize,
): void {
  for (let ch = c0; ch < c1; ch++) {
    const r = storeForward(coef, c, ch, load<f64>(mean + at8(ch)), load<f64>(variance + at8(ch)), eps, weight, bias);
    store<f64>(invstd + at8(ch), r);
  }
}

/**
 * Backward coefficients for channels [c0, c1) from the reductions `sumDy` = sum(dy) and
 * `sumDyXc` = sum(dy * (x - mean)) over `count` values; writes f64 `dweight` = invstd * sumDyXc.
 * Training: dx = k1 * (dy - sumDy / n - xhat * dweight / n), xhat = (x - mean) * invstd.
 * Eval (statistics are constants): dx = k1 * dy, and the block takes eval form.
 */
export function backwardCoefficients(
  c: i32, c0: i32, c1: i32, count: f64, sumDy: usize, sumDyXc: usize, mean: usize, invstd: usize,
  weight: usize, training: bool, coef: usize, dweight: usize,
): void {
  for (let ch = c0; ch < c1; ch++) {
    const r = load<f64>(invstd + at8(ch));
    const g: f64 = weight ? <f64>load<f32>(weight + at4(ch)) : 1.0;
    const dw = load<f64>(sumDyXc + at8(ch)) * r;
    const k1 = g * r;
    store<f64>(dweight + at8(ch), dw);
    store<f32>(rowAt(coef, c, ROW_A, ch), <f32>k1);
    if (training) {
      storeMean(coef, c, ch, load<f64>(mean + at8(ch)));
      store<f32>(rowAt(coef, c, ROW_B, ch), <f32>(-k1 * load<f64>(sumDy + at8(ch)) / count));
      store<f32>(rowAt(coef, c, ROW_K2, ch), <f32>(-k1 * r * dw / count));
    } else {
      store<f32>(rowAt(coef, c, ROW_MH, ch), 0);
      store<f32>(rowAt(coef, c, ROW_ML, ch), 0);
      store<f32>(rowAt(coef, c, ROW_B, ch), 0);
    }
  }
}
