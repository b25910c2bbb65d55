// Batch statistics (mean, biased variance) per channel of a channels-first tensor [N, C, S].
//
// One read of the data, in memory order: sums of d = x - K and d * d in f64, K being the channel's
// first value (the "shifted data" algorithm; see: Chan, Golub, LeVeque, "Algorithms for computing
// the sample variance", 1983). f64 keeps 1e18-scale squares finite and K keeps large offsets from
// cancelling.
import { lo64, hi64, sum64, at4, at8 } from "./widen";

/** Adds the sums of d = x - k and d * d over [p, end) to f64 `sum1[0]` and `sum2[0]`. */
@inline function accumulateRow(p: usize, end: usize, k: f64, sum1: usize, sum2: usize): void {
  let s1: f64 = 0;
  let s2: f64 = 0;
  let q = p;
  if (ASC_FEATURE_SIMD) {
    const kv = f64x2.splat(k);
    let a0 = f64x2.splat(0), a1 = a0, a2 = a0, a3 = a0;
    let q0 = a0, q1 = a0, q2 = a0, q3 = a0;
    for (; q + 32 <= end; q += 32) {
      const v = v128.load(q);
      const w = v128.load(q, 16);
      const d0 = f64x2.sub(lo64(v), kv);
      const d1 = f64x2.sub(hi64(v), kv);
      const d2 = f64x2.sub(lo64(w), kv);
      const d3 = f64x2.sub(hi64(w), kv);
      a0 = f64x2.add(a0, d0); q0 = f64x2.add(q0, f64x2.mul(d0, d0));
      a1 = f64x2.add(a1, d1); q1 = f64x2.add(q1, f64x2.mul(d1, d1));
      a2 = f64x2.add(a2, d2); q2 = f64x2.add(q2, f64x2.mul(d2, d2));
      a3 = f64x2.add(a3, d3); q3 = f64x2.add(q3, f64x2.mul(d3, d3));
    }
    if (q + 16 <= end) {
      const v = v128.load(q);
      const d0 = f64x2.sub(lo64(v), kv);
      const d1 = f64x2.sub(hi64(v), kv);
      a0 = f64x2.add(a0, d0); q0 = f64x2.add(q0, f64x2.mul(d0, d0));
      a1 = f64x2.add(a1, d1); q1 = f64x2.add(q1, f64x2.mul(d1, d1));
      q += 16;
    }
    s1 = sum64(f64x2.add(f64x2.add(a0, a1), f64x2.add(a2, a3)));
    s2 = sum64(f64x2.add(f64x2.add(q0, q1), f64x2.add(q2, q3)));
  } else {
    let t1: f64 = 0, t2: f64 = 0;
    for (; q + 8 <= end; q += 8) {
      const d0 = <f64>load<f32>(q) - k;
      const d1 = <f64>load<f32>(q, 4) - k;
      s1 += d0; s2 += d0 * d0;
      t1 += d1; t2 += d1 * d1;
    }
    s1 += t1; s2 += t2;
  }
  for (; q < end; q += 4) {
    const d = <f64>load<f32>(q) - k;
    s1 += d; s2 += d * d;
  }
  store<f64>(sum1, load<f64>(sum1) + s1);
  store<f64>(sum2, load<f64>(sum2) + s2);
}

/** Mean and biased variance of channels [c0, c1), as f64 arrays of length C. */
export function statsChannelsFirst(
  x: usize, n: i32, c: i32, s: i32, c0: i32, c1: i32, mean: usize, variance: usize,
): void {
  // mean and variance hold the sums of d and d * d until the end
  for (let ch = c0; ch < c1; ch++) {
    store<f64>(mean + at8(ch), 0);
    store<f64>(variance + at8(ch), 0);
  }
  const row = at4(s);
  for (let i = 0; i < n; i++) {
    for (let ch = c0; ch < c1; ch++) {
      const p = x + at4(i * c + ch) * <usize>s;
      const k = <f64>load<f32>(x + at4(ch) * <usize>s);
      accumulateRow(p, p + row, k, mean + at8(ch), variance + at8(ch));
    }
  }
  const count = <f64>n * <f64>s;
  for (let ch = c0; ch < c1; ch++) {
    const s1 = load<f64>(mean + at8(ch));
    const s2 = load<f64>(variance + at8(ch));
    const shift = s1 / count;
    store<f64>(mean + at8(ch), <f64>load<f32>(x + at4(ch) * <usize>s) + shift);
    store<f64>(variance + at8(ch), max(s2 - s1 * shift, 0) / count);
  }
}
