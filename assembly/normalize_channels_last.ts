// y = (x - mh) * a + b per channel of a channels-last tensor [M, C]
// (forward normalize + affine, and eval-mode backward dx = dy * k1; see coefficients.ts). When a
// channel is at the edge of f32's range, every channel takes the scaled form
// y = (x * s - mh * s) * (a / s) + b (s = 1 gives the same bits as the plain form).
import { at4 } from "./widen";
import { anyScaled, rowAt, ROW_MH, ROW_A, ROW_B, ROW_S, ROW_MHS, ROW_AS } from "./coefficients";

/** Normalizes channels [c0, c1) of every row with the forward coefficient block; `y` may equal `x`. */
export function normalizeChannelsLast(
  x: usize, y: usize, rows: i32, c: i32, c0: i32, c1: i32, coef: usize,
): void {
  if (anyScaled(coef, c, c0, c1)) {
    normalizeScaled(x, y, rows, c, c0, c1, coef);
    return;
  }
  const mp = rowAt(coef, c, ROW_MH, 0), ap = rowAt(coef, c, ROW_A, 0), bp = rowAt(coef, c, ROW_B, 0);
  const line = at4(c);
  for (let r = 0; r < rows; r++) {
    const p = x + line * <usize>r, o = y + line * <usize>r;
    let ch = c0;
    if (ASC_FEATURE_SIMD) {
      for (; ch + 4 <= c1; ch += 4) {
        const j = at4(ch);
        v128.store(o + j, f32x4.add(f32x4.mul(f32x4.sub(v128.load(p + j), v128.load(mp + j)), v128.load(ap + j)), v128.load(bp + j)));
      }
    }
    for (; ch < c1; ch++) {
      const j = at4(ch);
      store<f32>(o + j, (load<f32>(p + j) - load<f32>(mp + j)) * load<f32>(ap + j) + load<f32>(bp + j));
    }
  }
}

/** The scaled form for every channel (rare). */
function normalizeScaled(x: usize, y: usize, rows: i32, c: i32, c0: i32, c1: i32, coef: usize): void {
  const sp = rowAt(coef, c, ROW_S, 0), mp = rowAt(coef, c, ROW_MHS, 0);
  const ap = rowAt(coef, c, ROW_AS, 0), bp = rowAt(coef, c, ROW_B, 0);
  const line = at4(c);
  for (let r = 0; r < rows; r++) {
    const p = x + line * <usize>r, o = y + line * <usize>r;
    let ch = c0;
    if (ASC_FEATURE_SIMD) {
      for (; ch + 4 <= c1; ch += 4) {
        const j = at4(ch);
        const t = f32x4.sub(f32x4.mul(v128.load(p + j), v128.load(sp + j)), v128.load(mp + j));
        v128.store(o + j, f32x4.add(f32x4.mul(t, v128.load(ap + j)), v128.load(bp + j)));
      }
    }
    for (; ch < c1; ch++) {
      const j = at4(ch);
      store<f32>(o + j, (load<f32>(p + j) * load<f32>(sp + j) - load<f32>(mp + j)) * load<f32>(ap + j) + load<f32>(bp + j));
    }
  }
}
