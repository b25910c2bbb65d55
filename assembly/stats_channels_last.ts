// Batch statistics (mean, biased variance) per channel of a channels-last tensor [M, C]
// (M = N * spatial; also BatchNorm1d's [N, C]), by the scheme of stats_channels_first.ts: sum(x) in
// f64, sum((x - K)^2) in f32 inside blocks of 16 rows and f64 across them in the SIMD build (f64 in
// the scalar build), and an f64 pass around the mean for a channel whose M2 cannot be trusted.
// Rows are read in memory order; the f32 block sums of all channels live in a row that stays in L1.
import { lo64, hi64, at4, at8 } from "./widen";
import { finishChannel, pilotOf, STATS_FAST } from "./stats_channels_first";
import { stride } from "./coefficients";

/** Rows per f32 block. */
const BLOCK_ROWS = 16;

/** Adds the f32 row `fb` (channels [c0, c1)) into the f64 array `sum2` and zeroes it. */
@inline function flushBlock(fb: usize, c0: i32, c1: i32, sum2: usize): void {
  let ch = c0;
  if (ASC_FEATURE_SIMD) {
    const zero = f32x4.splat(0);
    for (; ch + 4 <= c1; ch += 4) {
      const v = v128.load(fb + at4(ch));
      const w = sum2 + at8(ch);
      v128.store(w, f64x2.add(v128.load(w), lo64(v)));
      v128.store(w, f64x2.add(v128.load(w, 16), hi64(v)), 16);
      v128.store(fb + at4(ch), zero);
    }
  }
  for (; ch < c1; ch++) {
    store<f64>(sum2 + at8(ch), load<f64>(sum2 + at8(ch)) + <f64>load<f32>(fb + at4(ch)));
    store<f32>(fb + at4(ch), 0);
  }
}

/** Adds the f32x4 `v` (channels j/4 .. j/4 + 3) into the f64 row at `row + 2 * j`. */
@inline function addWide(row: usize, j: usize, v: v128): void {
  const w = row + (j << 1);
  v128.store(w, f64x2.add(v128.load(w), lo64(v)));
  v128.store(w, f64x2.add(v128.load(w, 16), hi64(v)), 16);
}

/**
 * Mean and biased variance of channels [c0, c1), as f64 arrays of length C, and sum(x) in the f64
 * array `total` unless it is 0. `work` is f32 scratch of 2 rows of C rounded up to 4 (the shifts K
 * and the f32 block sums). `mode` as statsChannelsFirst's: STATS_FAST, STATS_WIDE, STATS_EXACT.
 */
export function statsChannelsLast(
  x: usize, rows: i32, c: i32, c0: i32, c1: i32, mean: usize, variance: usize, total: usize, work: usize, mode: i32,
): void {
  const line = at4(c);
  const shift = work, fb = work + at4(stride(c));
  // mean and variance hold sum(x) and sum((x - K)^2) until the end
  for (let ch = c0; ch < c1; ch++) {
    store<f32>(shift + at4(ch), pilotOf(rows, x + at4(ch), 1, line));
    store<f32>(fb + at4(ch), 0);
    store<f64>(mean + at8(ch), 0);
    store<f64>(variance + at8(ch), 0);
  }
  let fast = false;
  if (ASC_FEATURE_SIMD) {
    fast = mode == STATS_FAST;
    if (fast) {
      for (let r0 = 0; r0 < rows; r0 += BLOCK_ROWS) {
        const r1 = min(rows, r0 + BLOCK_ROWS);
        let r = r0;
        // four rows at a time share each load and store of the sums
        for (; r + 4 <= r1; r += 4) {
          const p = x + line * <usize>r;
          let ch = c0;
          for (; ch + 4 <= c1; ch += 4) {
            const j = at4(ch);
            const k = v128.load(shift + j);
            const x0 = v128.load(p + j), x1 = v128.load(p + line + j);
            const x2 = v128.load(p + 2 * line + j), x3 = v128.load(p + 3 * line + j);
            const w = mean + (j << 1);
            v128.store(w, f64x2.add(v128.load(w), f64x2.add(f64x2.add(lo64(x0), lo64(x1)), f64x2.add(lo64(x2), lo64(x3)))));
            v128.store(w, f64x2.add(v128.load(w, 16), f64x2.add(f64x2.add(hi64(x0), hi64(x1)), f64x2.add(hi64(x2), hi64(x3)))), 16);
            const d0 = f32x4.sub(x0, k), d1 = f32x4.sub(x1, k), d2 = f32x4.sub(x2, k), d3 = f32x4.sub(x3, k);
            const q = f32x4.add(f32x4.add(f32x4.mul(d0, d0), f32x4.mul(d1, d1)), f32x4.add(f32x4.mul(d2, d2), f32x4.mul(d3, d3)));
            v128.store(fb + j, f32x4.add(v128.load(fb + j), q));
          }
          for (; ch < c1; ch++) {
            const j = at4(ch);
            const k = load<f32>(shift + j);
            for (let i = 0; i < 4; i++) {
              const v = load<f32>(p + line * <usize>i + j);
              const d = v - k;
              store<f64>(mean + at8(ch), load<f64>(mean + at8(ch)) + <f64>v);
              store<f32>(fb + j, load<f32>(fb + j) + d * d);
            }
          }
        }
        for (; r < r1; r++) {
          const p = x + line * <usize>r;
          let ch = c0;
          for (; ch + 4 <= c1; ch += 4) {
            const j = at4(ch);
            const v = v128.load(p + j);
            addWide(mean, j, v);
            const d = f32x4.sub(v, v128.load(shift + j));
            v128.store(fb + j, f32x4.add(v128.load(fb + j), f32x4.mul(d, d)));
          }
          for (; ch < c1; ch++) {
            const j = at4(ch);
            const v = load<f32>(p + j);
            const d = v - load<f32>(shift + j);
            store<f64>(mean + at8(ch), load<f64>(mean + at8(ch)) + <f64>v);
            store<f32>(fb + j, load<f32>(fb + j) + d * d);
          }
        }
        flushBlock(fb, c0, c1, variance);
      }
    }
  }
  if (!fast) {
    // f64 throughout, still in memory order
    for (let r = 0; r < rows; r++) {
      const p = x + line * <usize>r;
      for (let ch = c0; ch < c1; ch++) {
        const v = <f64>load<f32>(p + at4(ch));
        const d = v - <f64>load<f32>(shift + at4(ch));
        store<f64>(mean + at8(ch), load<f64>(mean + at8(ch)) + v);
        store<f64>(variance + at8(ch), load<f64>(variance + at8(ch)) + d * d);
      }
    }
  }
  const count = <f64>rows;
  for (let ch = c0; ch < c1; ch++) {
    const k = <f64>load<f32>(shift + at4(ch));
    finishChannel(x + at4(ch), rows, 1, line, count, k, mode, mean + at8(ch), variance + at8(ch), total ? total + at8(ch) : 0);
  }
}
