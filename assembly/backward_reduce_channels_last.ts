// Backward reductions per channel of a channels-last tensor [M, C], in one pass over x and dy in
// memory order: sumDy = sum(dy) and sumDyXc = sum(dy * (x - mean)), by the scheme of
// stats_channels_last.ts (f32 within blocks of 16 rows in a scratch that stays in L1, f64 across;
// the scalar build sums in f64).
import { at4, at8 } from "./widen";
import { rowAt, stride, ROW_MH, ROW_ML, ROW_A, ROW_B } from "./coefficients";
import { BLOCK_ROWS, flushBlock } from "./stats_channels_last";

/**
 * Channels [c0, c1): the mh/ml rows of `coef` in (the mean), f64 `sumDy` and `sumDyXc` out; the
 * a/b rows of `coef` serve as scratch.
 */
export function backwardReduceChannelsLast(
  dy: usize, x: usize, rows: i32, c: i32, c0: i32, c1: i32, coef: usize, sumDy: usize, sumDyXc: usize,
): void {
  const line = at4(c);
  const mp = rowAt(coef, c, ROW_MH, 0), fa = rowAt(coef, c, ROW_A, 0), fb = rowAt(coef, c, ROW_B, 0);
  for (let ch = c0; ch < c1; ch++) {
    store<f32>(fa + at4(ch), 0);
    store<f32>(fb + at4(ch), 0);
    store<f64>(sumDy + at8(ch), 0);
    store<f64>(sumDyXc + at8(ch), 0);
  }
  if (ASC_FEATURE_SIMD) {
    for (let r0 = 0; r0 < rows; r0 += BLOCK_ROWS) {
      const r1 = min(rows, r0 + BLOCK_ROWS);
      let r = r0;
      // four rows at a time share each load and store of the block sums
      for (; r + 4 <= r1; r += 4) {
        const p = x + line * <usize>r, g = dy + line * <usize>r;
        let ch = c0;
        for (; ch + 4 <= c1; ch += 4) {
          const j = at4(ch);
          const m = v128.load(mp + j);
          const e0 = v128.load(g + j), e1 = v128.load(g + line + j);
          const e2 = v128.load(g + 2 * line + j), e3 = v128.load(g + 3 * line + j);
          v128.store(fa + j, f32x4.add(v128.load(fa + j), f32x4.add(f32x4.add(e0, e1), f32x4.add(e2, e3))));
          const q = f32x4.add(f32x4.mul(e0, f32x4.sub(v128.load(p + j), m)), f32x4.mul(e1, f32x4.sub(v128.load(p + line + j), m)));
          const u = f32x4.add(f32x4.mul(e2, f32x4.sub(v128.load(p + 2 * line + j), m)), f32x4.mul(e3, f32x4.sub(v128.load(p + 3 * line + j), m)));
          v128.store(fb + j, f32x4.add(v128.load(fb + j), f32x4.add(q, u)));
        }
        for (; ch < c1; ch++) {
          const j = at4(ch);
          const m = load<f32>(mp + j);
          for (let i = 0; i < 4; i++) {
            const e = load<f32>(g + line * <usize>i + j);
            store<f32>(fa + j, load<f32>(fa + j) + e);
            store<f32>(fb + j, load<f32>(fb + j) + e * (load<f32>(p + line * <usize>i + j) - m));
          }
        }
      }
      for (; r < r1; r++) {
        const p = x + line * <usize>r, g = dy + line * <usize>r;
        let ch = c0;
        for (; ch + 4 <= c1; ch += 4) {
          const j = at4(ch);
          const e = v128.load(g + j);
          v128.store(fa + j, f32x4.add(v128.load(fa + j), e));
          v128.store(fb + j, f32x4.add(v128.load(fb + j), f32x4.mul(e, f32x4.sub(v128.load(p + j), v128.load(mp + j)))));
        }
        for (; ch < c1; ch++) {
          const j = at4(ch);
          const e = load<f32>(g + j);
          store<f32>(fa + j, load<f32>(fa + j) + e);
          store<f32>(fb + j, load<f32>(fb + j) + e * (load<f32>(p + j) - load<f32>(mp + j)));
        }
      }
      flushBlock(fa, fb, c0, c1, sumDy, sumDyXc);
    }
  } else {
    for (let r = 0; r < rows; r++) {
      const p = x + line * <usize>r, g = dy + line * <usize>r;
      for (let ch = c0; ch < c1; ch++) {
        const j = at4(ch);
        const e = <f64>load<f32>(g + j);
        store<f64>(sumDy + at8(ch), load<f64>(sumDy + at8(ch)) + e);
        store<f64>(sumDyXc + at8(ch), load<f64>(sumDyXc + at8(ch)) + e * (<f64>load<f32>(p + j) - <f64>load<f32>(mp + j)));
      }
    }
  }
  // sum(dy * (x - mean)) = sum(dy * (x - mh)) - ml * sum(dy)
  for (let ch = c0; ch < c1; ch++) {
    const ml = <f64>load<f32>(rowAt(coef, c, ROW_ML, ch));
    store<f64>(sumDyXc + at8(ch), load<f64>(sumDyXc + at8(ch)) - ml * load<f64>(sumDy + at8(ch)));
  }
}
