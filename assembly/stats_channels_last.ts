// Batch statistics (mean, biased variance) per channel of a channels-last tensor [M, C]
// (M = N * spatial; also BatchNorm1d's [N, C]). Same shifted f64 sums as stats_channels_first.ts,
// K being the first row. Rows are taken in tiles that stay in L1 while each group of 4 channels
// sweeps them with its accumulators in registers.
import { lo64, hi64, at4, at8 } from "./widen";

/** Rows per tile: about 32 KiB of input. */
@inline export function tileRows(c: i32): i32 {
  return max(1, 8192 / max(c, 1));
}

/** Mean and biased variance of channels [c0, c1), as f64 arrays of length C. */
export function statsChannelsLast(
  x: usize, rows: i32, c: i32, c0: i32, c1: i32, mean: usize, variance: usize,
): void {
  // mean and variance hold the running sums of d and d * d until the end
  for (let ch = c0; ch < c1; ch++) {
    store<f64>(mean + at8(ch), 0);
    store<f64>(variance + at8(ch), 0);
  }
  const line = at4(c);
  const tile = tileRows(c);
  for (let r0 = 0; r0 < rows; r0 += tile) {
    const r1 = min(rows, r0 + tile);
    let ch = c0;
    if (ASC_FEATURE_SIMD) {
      for (; ch + 4 <= c1; ch += 4) {
        const kf = v128.load(x + at4(ch));
        const klo = lo64(kf), khi = hi64(kf);
        let a0 = f64x2.splat(0), a1 = a0, a2 = a0, a3 = a0;
        let q0 = a0, q1 = a0, q2 = a0, q3 = a0;
        let p = x + line * <usize>r0 + at4(ch);
        const end = x + line * <usize>r1 + at4(ch);
        for (; p + line < end; p += line << 1) {
          const v = v128.load(p);
          const w = v128.load(p + line);
          const d0 = f64x2.sub(lo64(v), klo);
          const d1 = f64x2.sub(hi64(v), khi);
          const d2 = f64x2.sub(lo64(w), klo);
          const d3 = f64x2.sub(hi64(w), khi);
          a0 = f64x2.add(a0, d0); q0 = f64x2.add(q0, f64x2.mul(d0, d0));
          a1 = f64x2.add(a1, d1); q1 = f64x2.add(q1, f64x2.mul(d1, d1));
          a2 = f64x2.add(a2, d2); q2 = f64x2.add(q2, f64x2.mul(d2, d2));
          a3 = f64x2.add(a3, d3); q3 = f64x2.add(q3, f64x2.mul(d3, d3));
        }
        if (p < end) {
          const v = v128.load(p);
          const d0 = f64x2.sub(lo64(v), klo);
          const d1 = f64x2.sub(hi64(v), khi);
          a0 = f64x2.add(a0, d0); q0 = f64x2.add(q0, f64x2.mul(d0, d0));
          a1 = f64x2.add(a1, d1); q1 = f64x2.add(q1, f64x2.mul(d1, d1));
        }
        const m = mean + at8(ch), u = variance + at8(ch);
        v128.store(m, f64x2.add(v128.load(m), f64x2.add(a0, a2)));
        v128.store(m, f64x2.add(v128.load(m, 16), f64x2.add(a1, a3)), 16);
        v128.store(u, f64x2.add(v128.load(u), f64x2.add(q0, q2)));
        v128.store(u, f64x2.add(v128.load(u, 16), f64x2.add(q1, q3)), 16);
      }
    }
    for (; ch < c1; ch++) {
      const k = <f64>load<f32>(x + at4(ch));
      let s1: f64 = 0, s2: f64 = 0;
      let p = x + line * <usize>r0 + at4(ch);
      const end = x + line * <usize>r1 + at4(ch);
      for (; p < end; p += line) {
        const d = <f64>load<f32>(p) - k;
        s1 += d; s2 += d * d;
      }
      store<f64>(mean + at8(ch), load<f64>(mean + at8(ch)) + s1);
      store<f64>(variance + at8(ch), load<f64>(variance + at8(ch)) + s2);
    }
  }
  const count = <f64>rows;
  for (let ch = c0; ch < c1; ch++) {
    const s1 = load<f64>(mean + at8(ch));
    const s2 = load<f64>(variance + at8(ch));
    const shift = s1 / count;
    store<f64>(mean + at8(ch), <f64>load<f32>(x + at4(ch)) + shift);
    store<f64>(variance + at8(ch), max(s2 - s1 * shift, 0) / count);
  }
}
