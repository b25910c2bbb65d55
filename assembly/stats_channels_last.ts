// Batch statistics (mean, biased variance) per channel of a channels-last tensor [M, C]
// (M = N * spatial; also BatchNorm1d's [N, C]), by the scheme of stats_channels_first.ts: shifted
// sums, f32 inside blocks of 16 rows and f64 across them in the SIMD build, and an f64 pass for a
// channel whose fast sums cannot be trusted. Rows are taken in tiles that stay in L1 while each
// group of 4 channels sweeps them with its accumulators in registers.
import { lo64, hi64, at4, at8 } from "./widen";
import { pilot, untrusted } from "./stats_channels_first";

/** Rows per tile: about 16 KiB of input (L1), and at least one 16-row block. */
@inline export function tileRows(c: i32): i32 {
  return max(16, (4096 / max(c, 1) + 15) & ~15);
}

/** Adds sum(d), sum(d * d), d = x - k, of one channel over rows [r0, r1) to `sum1[0]`, `sum2[0]`, in f64. */
@inline function accumulateColumn(p: usize, line: usize, r0: i32, r1: i32, k: f64, sum1: usize, sum2: usize): void {
  let s1: f64 = 0, s2: f64 = 0;
  const end = p + line * <usize>r1;
  for (let q = p + line * <usize>r0; q < end; q += line) {
    const d = <f64>load<f32>(q) - k;
    s1 += d; s2 += d * d;
  }
  store<f64>(sum1, load<f64>(sum1) + s1);
  store<f64>(sum2, load<f64>(sum2) + s2);
}

/**
 * Mean and biased variance of channels [c0, c1), as f64 arrays of length C; `shift` is f32[C]
 * scratch for the per-channel K. `exact` sums everything in f64 (for RunningStats).
 */
export function statsChannelsLast(
  x: usize, rows: i32, c: i32, c0: i32, c1: i32, mean: usize, variance: usize, shift: usize, exact: bool,
): void {
  const line = at4(c);
  // mean and variance hold the sums of d and d * d until the end
  for (let ch = c0; ch < c1; ch++) {
    store<f32>(shift + at4(ch), pilot(x + at4(ch), rows, line));
    store<f64>(mean + at8(ch), 0);
    store<f64>(variance + at8(ch), 0);
  }
  const tile = tileRows(c);
  for (let r0 = 0; r0 < rows; r0 += tile) {
    const r1 = min(rows, r0 + tile);
    let ch = exact ? c1 : c0;
    if (ASC_FEATURE_SIMD) {
      for (; ch + 4 <= c1; ch += 4) {
        const kv = v128.load(shift + at4(ch));
        let alo = f64x2.splat(0), ahi = alo, blo = alo, bhi = alo;
        let p = x + line * <usize>r0 + at4(ch);
        const end = x + line * <usize>r1 + at4(ch);
        const block = line << 4;
        while (p + block <= end) {
          let a0 = f32x4.splat(0), a1 = a0, b0 = a0, b1 = a0;
          for (const stop = p + block; p < stop; p += line << 1) {
            const d = f32x4.sub(v128.load(p), kv);
            const e = f32x4.sub(v128.load(p + line), kv);
            a0 = f32x4.add(a0, d); b0 = f32x4.add(b0, f32x4.mul(d, d));
            a1 = f32x4.add(a1, e); b1 = f32x4.add(b1, f32x4.mul(e, e));
          }
          const u = f32x4.add(a0, a1), v = f32x4.add(b0, b1);
          alo = f64x2.add(alo, lo64(u)); ahi = f64x2.add(ahi, hi64(u));
          blo = f64x2.add(blo, lo64(v)); bhi = f64x2.add(bhi, hi64(v));
        }
        for (; p < end; p += line) {
          const d = f32x4.sub(v128.load(p), kv);
          const dd = f32x4.mul(d, d);
          alo = f64x2.add(alo, lo64(d)); ahi = f64x2.add(ahi, hi64(d));
          blo = f64x2.add(blo, lo64(dd)); bhi = f64x2.add(bhi, hi64(dd));
        }
        const m = mean + at8(ch), u = variance + at8(ch);
        v128.store(m, f64x2.add(v128.load(m), alo));
        v128.store(m, f64x2.add(v128.load(m, 16), ahi), 16);
        v128.store(u, f64x2.add(v128.load(u), blo));
        v128.store(u, f64x2.add(v128.load(u, 16), bhi), 16);
      }
    }
    for (ch = exact ? c0 : ch; ch < c1; ch++) {
      const k = <f64>load<f32>(shift + at4(ch));
      accumulateColumn(x + at4(ch), line, r0, r1, k, mean + at8(ch), variance + at8(ch));
    }
  }
  const count = <f64>rows;
  for (let ch = c0; ch < c1; ch++) {
    let k = <f64>load<f32>(shift + at4(ch));
    let s1 = load<f64>(mean + at8(ch));
    let s2 = load<f64>(variance + at8(ch));
    if (!exact && untrusted(s1, s2, count)) {
      k += s1 / count;
      store<f64>(mean + at8(ch), 0);
      store<f64>(variance + at8(ch), 0);
      accumulateColumn(x + at4(ch), line, 0, rows, k, mean + at8(ch), variance + at8(ch));
      s1 = load<f64>(mean + at8(ch));
      s2 = load<f64>(variance + at8(ch));
    }
    const d = s1 / count;
    store<f64>(mean + at8(ch), k + d);
    store<f64>(variance + at8(ch), max(s2 - s1 * d, 0) / count);
  }
}
