// Per-channel coefficient blocks that the elementwise kernels read.
//
// A block is COEF_ROWS rows of f32, each `stride(c)` floats long (C rounded up to 4, so rows stay
// 16-byte aligned for channels-last vector loads):
//   forward:  y  = (x - mh) * a + b                  a = w * invstd, b = bias - ml * a
//   backward: dx = dy * a + (x - mh) * k2 + b        (training; a = k1, b = k3 - ml * k2)
// The mean is carried as an unevaluated f32 pair mh + ml: x - mh is exact when x is near the mean
// (Sterbenz), so a large offset does not cost y its precision, unlike torch's x * alpha + beta'.
// Eval-mode backward dx = dy * k1 is a forward block with mh = 0, b = 0, so it reuses normalize.
//
// A channel at the edge of f32's range (|mean| >= 2^100, or a coefficient that would leave f32's
// normal range, e.g. invstd^3 in k2 for data at 1e37 or 1e-30) is marked by a scale s != 1, a power
// of two, and takes the scaled forms, where every intermediate stays representable:
//   forward:  y  = (x * s - mh * s) * (a / s) + b
//   backward: dx = k1 * ((dy - c3) - ((x * s - mh * s) - ml * s) * (invstd / s) * c2)
//             c3 = sum(dy) / n, c2 = dweight / n.
// Multiplying by a power of two is exact, so these lose nothing to the normal forms.
import { at4, at8 } from "./widen";

export const ROW_MH = 0;
export const ROW_INVSTD = 1; // f32 invstd, read back by the caller with mh (and ml)
export const ROW_ML = 2;
export const ROW_A = 3;
export const ROW_B = 4;
export const ROW_K2 = 5;
export const ROW_S = 6; // 1, or the scale of a channel at the edge of f32's range
export const ROW_MHS = 7; // mh * s
export const ROW_MLS = 8; // ml * s (backward)
export const ROW_AS = 9; // a / s (forward), invstd / s (backward)
export const ROW_C2 = 10; // dweight / n (scaled backward)
export const ROW_C3 = 11; // sum(dy) / n (scaled backward)

/** Rows in a coefficient block: the one definition the TypeScript side reads (`coefRows`). */
export const COEF_ROWS: i32 = 12;

/** Row length in floats for `c` channels. */
@inline export function stride(c: i32): i32 {
  return (c + 3) & ~3;
}

@inline export function rowAt(coef: usize, c: i32, row: i32, ch: i32): usize {
  return coef + at4(row * stride(c) + ch);
}

/** Whether any channel in [c0, c1) takes the scaled forms. */
export function anyScaled(coef: usize, c: i32, c0: i32, c1: i32): bool {
  for (let ch = c0; ch < c1; ch++) if (load<f32>(rowAt(coef, c, ROW_S, ch)) != 1) return true;
  return false;
}

const BIG: f64 = 1.2676506002282294e30; // 2^100
const SMALL: f64 = 7.888609052210118e-31; // 2^-100

/** Whether a finite non-zero coefficient would leave the range where f32 keeps its precision. */
@inline function outside(v: f64): bool {
  const m = abs(v);
  return m != 0 && m < Infinity && (m < SMALL || m > BIG);
}

/**
 * The scale for a channel whose magnitudes are set by `r` (a or invstd): a power of two near r, so
 * r / s is near 1, at most 1/4 when the mean is huge (then x * s - mh * s cannot overflow).
 */
@inline function scaleFor(r: f64, mh: f64): f64 {
  // the binary exponent of r (r is a normal f64 here: finite, non-zero, at most 2^1023)
  let e = <i32>((reinterpret<u64>(r) >> 52) & 0x7ff) - 1023;
  if (abs(mh) >= BIG && e > -2) e = -2;
  e = max(-126, min(126, e));
  return reinterpret<f64>(<u64>(e + 1023) << 52);
}

/** Stores the mean of channel `ch` as mh + ml; returns ml. */
@inline function storeMean(coef: usize, c: i32, ch: i32, mean: f64): f64 {
  const mh = <f32>mean;
  const ml = <f32>(mean - <f64>mh);
  store<f32>(rowAt(coef, c, ROW_MH, ch), mh);
  store<f32>(rowAt(coef, c, ROW_ML, ch), ml);
  return <f64>ml;
}

/** Marks channel `ch` unscaled (s = 1, mh * s = mh, a / s = a). */
@inline function storeUnscaled(coef: usize, c: i32, ch: i32, a: f32): void {
  store<f32>(rowAt(coef, c, ROW_S, ch), 1);
  store<f32>(rowAt(coef, c, ROW_MHS, ch), load<f32>(rowAt(coef, c, ROW_MH, ch)));
  store<f32>(rowAt(coef, c, ROW_AS, ch), a);
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
    storeForward(coef, c, ch, m, r, weight, bias);
    store<f64>(invstd + at8(ch), r);
  }
}

/**
 * The forward block of channels [c0, c1) from the f64 `mean` and `invstd` a forward normalized with
 * (and its `weight`/`bias`, f32 or 0): the very bits forwardCoefficients wrote, which the backward
 * kernels recompute a fused ReLU's mask from (relu.ts).
 */
export function maskCoefficients(
  c: i32, c0: i32, c1: i32, mean: usize, invstd: usize, weight: usize, bias: usize, coef: usize,
): void {
  for (let ch = c0; ch < c1; ch++) storeForward(coef, c, ch, load<f64>(mean + at8(ch)), load<f64>(invstd + at8(ch)), weight, bias);
}

/** The forward rows of channel `ch` from its f64 mean `m` and invstd `r`. */
@inline function storeForward(coef: usize, c: i32, ch: i32, m: f64, r: f64, weight: usize, bias: usize): void {
  const g: f64 = weight ? <f64>load<f32>(weight + at4(ch)) : 1.0;
  const b: f64 = bias ? <f64>load<f32>(bias + at4(ch)) : 0.0;
  const ml = storeMean(coef, c, ch, m);
  const a = g * r;
  store<f32>(rowAt(coef, c, ROW_A, ch), <f32>a);
  store<f32>(rowAt(coef, c, ROW_B, ch), <f32>(b - ml * a));
  store<f32>(rowAt(coef, c, ROW_INVSTD, ch), <f32>r);
  scaleForward(coef, c, ch, a);
}

/** Sets the scale rows of channel `ch` for the forward form with f64 coefficient `a`. */
@inline function scaleForward(coef: usize, c: i32, ch: i32, a: f64): void {
  const mh = <f64>load<f32>(rowAt(coef, c, ROW_MH, ch));
  if ((abs(mh) >= BIG && abs(mh) < Infinity) || outside(a)) {
    const s = scaleFor(a, mh);
    store<f32>(rowAt(coef, c, ROW_S, ch), <f32>s);
    store<f32>(rowAt(coef, c, ROW_MHS, ch), <f32>(mh * s));
    store<f32>(rowAt(coef, c, ROW_AS, ch), <f32>(a / s));
  } else {
    storeUnscaled(coef, c, ch, <f32>a);
  }
}

/** Writes the mh/ml rows for channels [c0, c1) from f64 `mean`: what the dx pass reads. */
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
      const c2 = dw / count;
      const c3 = load<f64>(sumDy + at8(ch)) / count;
      const k2 = -k1 * r * c2;
      const ml = <f64>load<f32>(rowAt(coef, c, ROW_ML, ch));
      const mh = <f64>load<f32>(rowAt(coef, c, ROW_MH, ch));
      store<f32>(rowAt(coef, c, ROW_K2, ch), <f32>k2);
      store<f32>(rowAt(coef, c, ROW_B, ch), <f32>(-k1 * c3 - ml * k2));
      if ((abs(mh) >= BIG && abs(mh) < Infinity) || outside(k2) || outside(k1) || outside(r)) {
        const s = scaleFor(r, mh);
        store<f32>(rowAt(coef, c, ROW_S, ch), <f32>s);
        store<f32>(rowAt(coef, c, ROW_MHS, ch), <f32>(mh * s));
        store<f32>(rowAt(coef, c, ROW_MLS, ch), <f32>(ml * s));
        store<f32>(rowAt(coef, c, ROW_AS, ch), <f32>(r / s));
        store<f32>(rowAt(coef, c, ROW_C2, ch), <f32>c2);
        store<f32>(rowAt(coef, c, ROW_C3, ch), <f32>c3);
      } else {
        storeUnscaled(coef, c, ch, <f32>k1);
      }
    } else {
      store<f32>(rowAt(coef, c, ROW_MH, ch), 0);
      store<f32>(rowAt(coef, c, ROW_B, ch), 0);
      scaleForward(coef, c, ch, k1);
    }
  }
}
