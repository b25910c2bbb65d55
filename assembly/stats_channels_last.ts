// Batch statistics (mean, biased variance) per channel of a channels-last tensor [M, C]
// (M = N * spatial; also BatchNorm1d's [N, C]), by the scheme of stats_channels_first.ts: shifted
// sums, f32 inside blocks of 16 rows and f64 across them in the SIMD build, and an f64 pass for a
// channel whose fast sums cannot be trusted. Rows are read in memory order; the f32 block sums of
// all channels live in a small scratch that stays in L1.
import { lo64, hi64, at4, at8 } from "./widen";
import { finishChannel, pilot } from "./stats_channels_first";
import { stride } from "./coefficients";

/** Rows per f32 block. */
export const BLOCK_ROWS = 16;

/** Adds the f32 rows `fa`, `fb` (channels [c0, c1)) into the f64 arrays and zeroes them. */
@inline export function flushBlock(fa: usize, fb: usize, c0: i32, c1: i32, sum1: usize, sum2: usize): void {
  let ch = c0;
  if (ASC_FEATURE_SIMD) {
    const zero = f32x4.splat(0);
    for (; ch + 4 <= c1; ch += 4) {
      const u = v128.load(fa + at4(ch)), v = v128.load(fb + at4(ch));
      const m = sum1 + at8(ch), w = sum2 + at8(ch);
      v128.store(m, f64x2.add(v128.load(m), lo64(u)));
      v128.store(m, f64x2.add(v128.load(m, 16), hi64(u)), 16);
      v128.store(w, f64x2.add(v128.load(w), lo64(v)));
      v128.store(w, f64x2.add(v128.load(w, 16), hi64(v)), 16);
      v128.store(fa + at4(ch), zero);
      v128.store(fb + at4(ch), zero);
    }
  }
  for (; ch < c1; ch++) {
    store<f64>(sum1 + at8(ch), load<f64>(sum1 + at8(ch)) + <f64>load<f32>(fa + at4(ch)));
    store<f64>(sum2 + at8(ch), load<f64>(sum2 + at8(ch)) + <f64>load<f32>(fb + at4(ch)));
    store<f32>(fa + at4(ch), 0);
    store<f32>(fb + at4(ch), 0);
  }
}

/**
 * Mean and biased variance of channels [c0, c1), as f64 arrays of length C. `work` is f32 scratch
 * of 3 rows of C rounded up to 4 (the shifts K and the f32 block sums). `exact` sums everything in
 * f64 (for RunningStats).
 */
export function statsChannelsLast(
  x: usize, rows: i32, c: i32, c0: i32, c1: i32, mean: usize, variance: usize, work: usize, exact: bool,
): void {
  const line = at4(c);
  const shift = work, fa = work + at4(stride(c)), fb = work + at4(2 * stride(c));
  // mean and variance hold the sums of d and d * d until the end
  for (let ch = c0; ch < c1; ch++) {
    store<f32>(shift + at4(ch), pilot(x + at4(ch), rows, line));
    store<f32>(fa + at4(ch), 0);
    store<f32>(fb + at4(ch), 0);
    store<f64>(mean + at8(ch), 0);
    store<f64>(variance + at8(ch), 0);
  }
  let fast = false;
  if (ASC_FEATURE_SIMD) {
    fast = !exact;
    if (fast) {
      for (let r0 = 0; r0 < rows; r0 += BLOCK_ROWS) {
        const r1 = min(rows, r0 + BLOCK_ROWS);
        let r = r0;
        // four rows at a time share each load and store of the block sums
        for (; r + 4 <= r1; r += 4) {
          const p = x + line * <usize>r;
          let ch = c0;
          for (; ch + 4 <= c1; ch += 4) {
            const j = at4(ch);
            const k = v128.load(shift + j);
            const d0 = f32x4.sub(v128.load(p + j), k);
            const d1 = f32x4.sub(v128.load(p + line + j), k);
            const d2 = f32x4.sub(v128.load(p + 2 * line + j), k);
            const d3 = f32x4.sub(v128.load(p + 3 * line + j), k);
            v128.store(fa + j, f32x4.add(v128.load(fa + j), f32x4.add(f32x4.add(d0, d1), f32x4.add(d2, d3))));
            const q = f32x4.add(f32x4.mul(d0, d0), f32x4.mul(d1, d1));
            v128.store(fb + j, f32x4.add(v128.load(fb + j), f32x4.add(q, f32x4.add(f32x4.mul(d2, d2), f32x4.mul(d3, d3)))));
          }
          for (; ch < c1; ch++) {
            const j = at4(ch);
            const k = load<f32>(shift + j);
            for (let i = 0; i < 4; i++) {
              const d = load<f32>(p + line * <usize>i + j) - k;
              store<f32>(fa + j, load<f32>(fa + j) + d);
              store<f32>(fb + j, load<f32>(fb + j) + d * d);
            }
          }
        }
        for (; r < r1; r++) {
          const p = x + line * <usize>r;
          let ch = c0;
          for (; ch + 4 <= c1; ch += 4) {
            const j = at4(ch);
            const d = f32x4.sub(v128.load(p + j), v128.load(shift + j));
            v128.store(fa + j, f32x4.add(v128.load(fa + j), d));
            v128.store(fb + j, f32x4.add(v128.load(fb + j), f32x4.mul(d, d)));
          }
          for (; ch < c1; ch++) {
            const j = at4(ch);
            const d = load<f32>(p + j) - load<f32>(shift + j);
            store<f32>(fa + j, load<f32>(fa + j) + d);
            store<f32>(fb + j, load<f32>(fb + j) + d * d);
          }
        }
        flushBlock(fa, fb, c0, c1, mean, variance);
      }
    }
  }
  if (!fast) {
    // f64 throughout, still in memory order
    for (let r = 0; r < rows; r++) {
      const p = x + line * <usize>r;
      for (let ch = c0; ch < c1; ch++) {
        const d = <f64>load<f32>(p + at4(ch)) - <f64>load<f32>(shift + at4(ch));
        store<f64>(mean + at8(ch), load<f64>(mean + at8(ch)) + d);
        store<f64>(variance + at8(ch), load<f64>(variance + at8(ch)) + d * d);
      }
    }
  }
  const count = <f64>rows;
  for (let ch = c0; ch < c1; ch++) {
    const k = <f64>load<f32>(shift + at4(ch));
    finishChannel(x + at4(ch), rows, 1, line, count, k, exact, mean + at8(ch), variance + at8(ch));
  }
}
