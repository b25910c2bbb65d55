// Batch statistics (mean, biased variance) per channel of a channels-first tensor [N, C, S].
//
// One read of the data, in memory order, with torch's float64-accumulated answer as the bar:
// - sum(x) in f64 (f32 -> f64 is exact), so the mean is float64-grade, whatever its size next to
//   the spread (a zero-mean channel included);
// - sum(d * d), d = x - K, K a pilot mean of values spread over the channel (the "shifted data"
//   algorithm; see: Chan, Golub, LeVeque, "Algorithms for computing the sample variance", 1983).
//   The SIMD build forms d * d and sums it in f32 four vectors at a time, in f64 beyond that; the
//   scalar build sums in f64. M2 = sum(d * d) - sum(d)^2 / n.
// A channel whose M2 cannot be trusted that way (see `untrusted`: cancellation, f32 overflow or
// underflow) is summed again in f64 around its mean, torch's two-pass formula. Non-finite data
// gives torch's answers: the mean is sum(x) / n (+-Inf or NaN) and the variance NaN.
import { lo64, hi64, sum64, at4, at8 } from "./widen";

/** Adds sum(x) and sum((x - k)^2) over [p, end) to f64 `sum1[0]` and `sum2[0]`, in f64. */
@inline export function accumulateExact(p: usize, end: usize, k: f64, sum1: usize, sum2: usize): void {
  let s1: f64 = 0, s2: f64 = 0, t1: f64 = 0, t2: f64 = 0;
  let q = p;
  for (; q + 8 <= end; q += 8) {
    const x0 = <f64>load<f32>(q), x1 = <f64>load<f32>(q, 4);
    const d0 = x0 - k, d1 = x1 - k;
    s1 += x0; s2 += d0 * d0;
    t1 += x1; t2 += d1 * d1;
  }
  if (q < end) {
    const x0 = <f64>load<f32>(q);
    const d = x0 - k;
    s1 += x0; s2 += d * d;
  }
  store<f64>(sum1, load<f64>(sum1) + s1 + t1);
  store<f64>(sum2, load<f64>(sum2) + s2 + t2);
}

/** As accumulateExact, with d * d formed and summed in f32 four vectors at a time (SIMD build). */
@inline function accumulateFast(p: usize, end: usize, k: f32, sum1: usize, sum2: usize): void {
  if (!ASC_FEATURE_SIMD) {
    accumulateExact(p, end, <f64>k, sum1, sum2);
    return;
  }
  const kv = f32x4.splat(k);
  let a0 = f64x2.splat(0), a1 = a0, b0 = a0, b1 = a0;
  let q = p;
  for (; q + 64 <= end; q += 64) {
    const x0 = v128.load(q), x1 = v128.load(q, 16), x2 = v128.load(q, 32), x3 = v128.load(q, 48);
    a0 = f64x2.add(a0, f64x2.add(f64x2.add(lo64(x0), lo64(x1)), f64x2.add(lo64(x2), lo64(x3))));
    a1 = f64x2.add(a1, f64x2.add(f64x2.add(hi64(x0), hi64(x1)), f64x2.add(hi64(x2), hi64(x3))));
    const d0 = f32x4.sub(x0, kv), d1 = f32x4.sub(x1, kv), d2 = f32x4.sub(x2, kv), d3 = f32x4.sub(x3, kv);
    const v = f32x4.add(f32x4.add(f32x4.mul(d0, d0), f32x4.mul(d1, d1)), f32x4.add(f32x4.mul(d2, d2), f32x4.mul(d3, d3)));
    b0 = f64x2.add(b0, lo64(v));
    b1 = f64x2.add(b1, hi64(v));
  }
  for (; q + 16 <= end; q += 16) {
    const x0 = v128.load(q);
    a0 = f64x2.add(a0, lo64(x0));
    a1 = f64x2.add(a1, hi64(x0));
    const d = f32x4.sub(x0, kv);
    const v = f32x4.mul(d, d);
    b0 = f64x2.add(b0, lo64(v));
    b1 = f64x2.add(b1, hi64(v));
  }
  let s1 = sum64(f64x2.add(a0, a1)), s2 = sum64(f64x2.add(b0, b1));
  for (; q < end; q += 4) {
    const x = load<f32>(q);
    const d = x - k;
    s1 += <f64>x; s2 += <f64>(d * d);
  }
  store<f64>(sum1, load<f64>(sum1) + s1);
  store<f64>(sum2, load<f64>(sum2) + s2);
}

/** Adds sum((x - m)^2) over [p, end) to f64 `sum2[0]`, in f64: the second pass of the exact formula. */
@inline function accumulateDeviations(p: usize, end: usize, m: f64, sum2: usize): void {
  let s2: f64 = 0;
  let q = p;
  if (ASC_FEATURE_SIMD) {
    const mv = f64x2.splat(m);
    let b0 = f64x2.splat(0), b1 = b0;
    for (; q + 16 <= end; q += 16) {
      const x = v128.load(q);
      const d = f64x2.sub(lo64(x), mv), e = f64x2.sub(hi64(x), mv);
      b0 = f64x2.add(b0, f64x2.mul(d, d));
      b1 = f64x2.add(b1, f64x2.mul(e, e));
    }
    s2 = sum64(f64x2.add(b0, b1));
  }
  for (; q < end; q += 4) {
    const d = <f64>load<f32>(q) - m;
    s2 += d * d;
  }
  store<f64>(sum2, load<f64>(sum2) + s2);
}

/**
 * Mean of up to 8 finite values spread evenly over a channel of `count` values, rounded to f32: the
 * shift K (0 if none is finite). The channel is runs of `run` contiguous floats from `first`, `step`
 * bytes apart (channels-last: runs of 1).
 */
@inline export function pilotOf(count: i32, first: usize, run: i32, step: usize): f32 {
  const m = min(count, 8);
  let s: f64 = 0;
  let seen = 0;
  for (let i = 0; i < m; i++) {
    // value j of the channel sits in run j / run, at offset j % run
    const j = <i64>i * <i64>count / <i64>m;
    const v = <f64>load<f32>(first + step * <usize>(j / <i64>run) + at4(<i32>(j % <i64>run)));
    if (v - v == 0) {
      s += v;
      seen++;
    }
  }
  return seen ? <f32>(s / <f64>seen) : 0;
}

/**
 * How the statistics kernels sum: FAST squares deviations in f32 within blocks (SIMD build; f64 in
 * the scalar build), WIDE squares them in f64 in the same single pass (float64-grade M2 unless
 * cancellation calls for the second pass), EXACT always adds the second pass around the mean.
 */
export const STATS_FAST = 0;
export const STATS_WIDE = 1;
export const STATS_EXACT = 2;

/**
 * Whether M2 from the one-pass sums lost the variance: sum(d * d) overflowed (f32 squares), more than
 * halved by cancellation (f32 squares; 2^-20 with f64 squares: `wide`, or the scalar build), or near or
 * below f32's underflow (mean d * d < 2^-100; a constant channel of exact zeros d is redone too,
 * cheaply and rarely).
 */
@inline export function untrusted(s2: f64, m2: f64, count: f64, wide: bool): bool {
  if (!ASC_FEATURE_SIMD || wide) return !(m2 >= s2 * 9.5367431640625e-7); // 2^-20
  return !(m2 >= s2 * 0.5 && s2 >= count * 7.888609052210118e-31 && s2 < Infinity); // 2^-100
}

/**
 * Finishes a channel whose sum(x) and sum((x - k)^2) sit in `mean[0]` and `variance[0]`: checks them,
 * redoes M2 in f64 around the mean if needed (always in STATS_EXACT mode), then stores the mean and biased
 * variance, and sum(x) in `total[0]` when `total` is not 0 (so a caller can merge blocks by their
 * sums, as exact as torch's one f64 sum). The channel's values are `runs` runs of `len` contiguous
 * floats from p, `step` bytes apart.
 */
@inline export function finishChannel(
  p: usize, runs: i32, len: i32, step: usize, count: f64, k: f64, mode: i32, mean: usize, variance: usize, total: usize,
): void {
  const s1 = load<f64>(mean);
  if (total) store<f64>(total, s1);
  let s2 = load<f64>(variance);
  const m = s1 / count;
  store<f64>(mean, m);
  if (s1 - s1 != 0) {
    // Inf or NaN among the values: torch's mean, and a NaN variance
    store<f64>(variance, NaN);
    return;
  }
  const sd = s1 - count * k;
  let m2 = s2 - (sd * sd) / count;
  if (mode == STATS_EXACT || untrusted(s2, m2, count, mode == STATS_WIDE)) {
    store<f64>(variance, 0);
    for (let i = 0; i < runs; i++) {
      const q = p + step * <usize>i;
      accumulateDeviations(q, q + at4(len), m, variance);
    }
    m2 = load<f64>(variance);
  }
  store<f64>(variance, max(m2, 0) / count);
}

/**
 * Mean and biased variance of channels [c0, c1), as f64 arrays of length C, and sum(x) in the f64
 * array `total` unless it is 0; `shift` is f32[C] scratch for the per-channel K. `mode`: STATS_FAST,
 * STATS_WIDE (f64 squares in one pass) or STATS_EXACT (the two-pass f64 formula, RunningStats).
 */
export function statsChannelsFirst(
  x: usize, n: i32, c: i32, s: i32, c0: i32, c1: i32, mean: usize, variance: usize, total: usize, shift: usize, mode: i32,
): void {
  const step = at4(c) * <usize>s;
  // mean and variance hold sum(x) and sum((x - K)^2) until the end
  for (let ch = c0; ch < c1; ch++) {
    store<f32>(shift + at4(ch), pilotOf(n * s, x + at4(ch) * <usize>s, s, step));
    store<f64>(mean + at8(ch), 0);
    store<f64>(variance + at8(ch), 0);
  }
  const row = at4(s);
  for (let i = 0; i < n; i++) {
    for (let ch = c0; ch < c1; ch++) {
      const p = x + at4(i * c + ch) * <usize>s;
      const k = load<f32>(shift + at4(ch));
      if (mode != STATS_FAST) accumulateExact(p, p + row, <f64>k, mean + at8(ch), variance + at8(ch));
      else accumulateFast(p, p + row, k, mean + at8(ch), variance + at8(ch));
    }
  }
  const count = <f64>n * <f64>s;
  for (let ch = c0; ch < c1; ch++) {
    const k = <f64>load<f32>(shift + at4(ch));
    finishChannel(x + at4(ch) * <usize>s, n, s, step, count, k, mode, mean + at8(ch), variance + at8(ch), total ? total + at8(ch) : 0);
  }
}
