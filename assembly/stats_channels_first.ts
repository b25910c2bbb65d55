// Batch statistics (mean, biased variance) per channel of a channels-first tensor [N, C, S].
//
// One read of the data, in memory order: sums of d = x - K and d * d, K being a pilot mean of the
// channel's first values (the "shifted data" algorithm; see: Chan, Golub, LeVeque, "Algorithms for
// computing the sample variance", 1983). The SIMD build sums in f32 within blocks of 256 values and
// in f64 across blocks, which keeps converts off the hot loop; a channel whose sums cannot be
// trusted that way (see `untrusted`) is summed again entirely in f64 around its mean. The scalar
// build always sums in f64.
import { lo64, hi64, sum64, at4, at8 } from "./widen";

/** Adds sum(d) and sum(d * d), d = x - k, over [p, end) to f64 `sum1[0]` and `sum2[0]`, in f64. */
@inline export function accumulateExact(p: usize, end: usize, k: f64, sum1: usize, sum2: usize): void {
  let s1: f64 = 0, s2: f64 = 0, t1: f64 = 0, t2: f64 = 0;
  let q = p;
  for (; q + 8 <= end; q += 8) {
    const d0 = <f64>load<f32>(q) - k;
    const d1 = <f64>load<f32>(q, 4) - k;
    s1 += d0; s2 += d0 * d0;
    t1 += d1; t2 += d1 * d1;
  }
  if (q < end) {
    const d = <f64>load<f32>(q) - k;
    s1 += d; s2 += d * d;
  }
  store<f64>(sum1, load<f64>(sum1) + s1 + t1);
  store<f64>(sum2, load<f64>(sum2) + s2 + t2);
}

/** As accumulateExact, with f32 sums inside blocks of 256 values (SIMD build). */
@inline function accumulateFast(p: usize, end: usize, k: f32, sum1: usize, sum2: usize): void {
  if (!ASC_FEATURE_SIMD) {
    accumulateExact(p, end, <f64>k, sum1, sum2);
    return;
  }
  const kv = f32x4.splat(k);
  let a = f64x2.splat(0), b = a;
  let q = p;
  // blocks of up to 256 values: one f64 flush per block (rows of small planes are one block)
  while (q + 16 <= end) {
    const stop = min(q + 1024, end);
    let a0 = f32x4.splat(0), a1 = a0, b0 = a0, b1 = a0;
    for (; q + 32 <= stop; q += 32) {
      const d = f32x4.sub(v128.load(q), kv);
      const e = f32x4.sub(v128.load(q, 16), kv);
      a0 = f32x4.add(a0, d); b0 = f32x4.add(b0, f32x4.mul(d, d));
      a1 = f32x4.add(a1, e); b1 = f32x4.add(b1, f32x4.mul(e, e));
    }
    if (q + 16 <= stop) {
      const d = f32x4.sub(v128.load(q), kv);
      a0 = f32x4.add(a0, d); b0 = f32x4.add(b0, f32x4.mul(d, d));
      q += 16;
    }
    const u = f32x4.add(a0, a1), v = f32x4.add(b0, b1);
    a = f64x2.add(a, f64x2.add(lo64(u), hi64(u)));
    b = f64x2.add(b, f64x2.add(lo64(v), hi64(v)));
  }
  let s1 = sum64(a), s2 = sum64(b);
  for (; q < end; q += 4) {
    const d = load<f32>(q) - k;
    s1 += <f64>d; s2 += <f64>(d * d);
  }
  store<f64>(sum1, load<f64>(sum1) + s1);
  store<f64>(sum2, load<f64>(sum2) + s2);
}

/** Mean of up to 8 values at stride `step` from p, rounded to f32: the shift K. */
@inline export function pilot(p: usize, count: i32, step: usize): f32 {
  const m = min(count, 8);
  let s: f64 = 0;
  for (let i = 0; i < m; i++) s += <f64>load<f32>(p + step * <usize>i);
  return <f32>(s / <f64>m);
}

/**
 * Whether fast sums s1, s2 of count shifted values lost the variance: cancellation (sum(d * d) >
 * 8 * M2), overflow or NaN, or squares near or below f32's underflow (mean d * d < 2^-100, unless
 * every d is 0: a constant channel).
 */
@inline export function untrusted(s1: f64, s2: f64, count: f64): bool {
  if (!ASC_FEATURE_SIMD) return false;
  const m2 = s2 - (s1 * s1) / count;
  if (s2 == 0 && s1 == 0) return false;
  return !(m2 >= s2 * 0.125 && s2 >= count * 7.888609052210118e-31 && s2 < Infinity); // 2^-100
}

/**
 * Finishes a channel whose sums of d = x - k sit in `mean[0]` and `variance[0]`: redoes them in f64
 * around the mean if the fast sums cannot be trusted, then stores the mean and biased variance. The
 * channel's values are `runs` runs of `len` contiguous floats from p, `step` bytes apart.
 */
@inline export function finishChannel(
  p: usize, runs: i32, len: i32, step: usize, count: f64, k: f64, exact: bool, mean: usize, variance: usize,
): void {
  let s1 = load<f64>(mean);
  let s2 = load<f64>(variance);
  if (!exact && untrusted(s1, s2, count)) {
    k += s1 / count;
    store<f64>(mean, 0);
    store<f64>(variance, 0);
    for (let i = 0; i < runs; i++) {
      const q = p + step * <usize>i;
      accumulateExact(q, q + at4(len), k, mean, variance);
    }
    s1 = load<f64>(mean);
    s2 = load<f64>(variance);
  }
  const d = s1 / count;
  store<f64>(mean, k + d);
  store<f64>(variance, max(s2 - s1 * d, 0) / count);
}

/**
 * Mean and biased variance of channels [c0, c1), as f64 arrays of length C; `shift` is f32[C]
 * scratch for the per-channel K. `exact` sums everything in f64 (for RunningStats).
 */
export function statsChannelsFirst(
  x: usize, n: i32, c: i32, s: i32, c0: i32, c1: i32, mean: usize, variance: usize, shift: usize, exact: bool,
): void {
  // mean and variance hold the sums of d and d * d until the end
  for (let ch = c0; ch < c1; ch++) {
    store<f32>(shift + at4(ch), pilot(x + at4(ch) * <usize>s, s, 4));
    store<f64>(mean + at8(ch), 0);
    store<f64>(variance + at8(ch), 0);
  }
  const row = at4(s);
  for (let i = 0; i < n; i++) {
    for (let ch = c0; ch < c1; ch++) {
      const p = x + at4(i * c + ch) * <usize>s;
      const k = load<f32>(shift + at4(ch));
      if (exact) accumulateExact(p, p + row, <f64>k, mean + at8(ch), variance + at8(ch));
      else accumulateFast(p, p + row, k, mean + at8(ch), variance + at8(ch));
    }
  }
  const count = <f64>n * <f64>s;
  for (let ch = c0; ch < c1; ch++) {
    const k = <f64>load<f32>(shift + at4(ch));
    finishChannel(x + at4(ch) * <usize>s, n, s, at4(c) * <usize>s, count, k, exact, mean + at8(ch), variance + at8(ch));
  }
}
