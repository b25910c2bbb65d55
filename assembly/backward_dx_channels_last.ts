// Training-mode dx = dy * k1 + (x - mh) * k2 + k3 per channel of a channels-last tensor [M, C]
// (coefficients from backwardCoefficients; dx may equal dy).
import { at4 } from "./widen";
import { rowAt, ROW_MH, ROW_A, ROW_B, ROW_K2 } from "./coefficients";

/** Channels [c0, c1) of every row with the backward coefficient block `coef`. */
export function backwardDxChannelsLast(
  dy: usize, x: usize, dx: usize, rows: i32, c: i32, c0: i32, c1: i32, coef: usize,
): void {
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
