// Training-mode dx = dy * k1 + (x - mh) * k2 + k3 per channel of a channels-last tensor [M, C]
// (coefficients from backwardCoefficients; dx may equal dy). When a channel is at the edge of f32's
// range, channels take the scaled form of coefficients.ts per row, each by its own scale.
import { at4 } from "./widen";
import {
  anyScaled, rowAt, ROW_MH, ROW_A, ROW_B, ROW_K2, ROW_S, ROW_MHS, ROW_MLS, ROW_AS, ROW_C2, ROW_C3,
} from "./coefficients";

/** Channels [c0, c1) of every row with the backward coefficient block `coef`. */
export function backwardDxChannelsLast(
  dy: usize, x: usize, dx: usize, rows: i32, c: i32, c0: i32, c1: i32, coef: usize,
): void {
  if (anyScaled(coef, c, c0, c1)) {
    dxMixed(dy, x, dx, rows, c, c0, c1, coef);
    return;
  }
  const mp = rowAt(coef, c, ROW_MH, 0), k1p = rowAt(coef, c, ROW_A, 0);
  const k3p = rowAt(coef, c, ROW_B, 0), k2p = rowAt(coef, c, ROW_K2, 0);
  const line = at4(c);
  for (let r = 0; r < rows; r++) {
    const base = line * <usize>r;
    const p = x + base, g = dy + base, o = dx + base;
    let ch = c0;
    if (ASC_FEATURE_SIMD) {
      for (; ch + 4 <= c1; ch += 4) {
        const j = at4(ch);
        const d = f32x4.mul(f32x4.sub(v128.load(p + j), v128.load(mp + j)), v128.load(k2p + j));
        v128.store(o + j, f32x4.add(f32x4.add(f32x4.mul(v128.load(g + j), v128.load(k1p + j)), v128.load(k3p + j)), d));
      }
    }
    for (; ch < c1; ch++) {
      const j = at4(ch);
      const d = (load<f32>(p + j) - load<f32>(mp + j)) * load<f32>(k2p + j);
      store<f32>(o + j, (load<f32>(g + j) * load<f32>(k1p + j) + load<f32>(k3p + j)) + d);
    }
  }
}

/** Element by element, each channel in its own form (rare: some channel is scaled). */
function dxMixed(dy: usize, x: usize, dx: usize, rows: i32, c: i32, c0: i32, c1: i32, coef: usize): void {
  const line = at4(c);
  for (let r = 0; r < rows; r++) {
    const base = line * <usize>r;
    for (let ch = c0; ch < c1; ch++) {
      const j = base + at4(ch);
      const xv = load<f32>(x + j), g = load<f32>(dy + j);
      const s = load<f32>(rowAt(coef, c, ROW_S, ch)), k1 = load<f32>(rowAt(coef, c, ROW_A, ch));
      if (s == 1) {
        const d = (xv - load<f32>(rowAt(coef, c, ROW_MH, ch))) * load<f32>(rowAt(coef, c, ROW_K2, ch));
        store<f32>(dx + j, (g * k1 + load<f32>(rowAt(coef, c, ROW_B, ch))) + d);
      } else {
        const xhat = ((xv * s - load<f32>(rowAt(coef, c, ROW_MHS, ch))) - load<f32>(rowAt(coef, c, ROW_MLS, ch))) * load<f32>(rowAt(coef, c, ROW_AS, ch));
        store<f32>(dx + j, ((g - load<f32>(rowAt(coef, c, ROW_C3, ch))) - xhat * load<f32>(rowAt(coef, c, ROW_C2, ch))) * k1);
      }
    }
  }
}
