// Training-mode dx = dy * k1 + k3 + ((x - mh) - ml) * k2 per channel of a channels-first tensor
// [N, C, S] (coefficients from backwardCoefficients; dx may equal dy).
import { at4 } from "./widen";
import { rowAt, ROW_MH, ROW_ML, ROW_A, ROW_B, ROW_K2 } from "./coefficients";

/** Channels [c0, c1) with the backward coefficient block `coef`. */
export function backwardDxChannelsFirst(
  dy: usize, x: usize, dx: usize, n: i32, c: i32, s: i32, c0: i32, c1: i32, coef: usize,
): void {
  const image = at4(c) * <usize>s;
  const row = at4(s);
  for (let ch = c0; ch < c1; ch++) {
    const mh = load<f32>(rowAt(coef, c, ROW_MH, ch)), ml = load<f32>(rowAt(coef, c, ROW_ML, ch));
    const k1 = load<f32>(rowAt(coef, c, ROW_A, ch)), k3 = load<f32>(rowAt(coef, c, ROW_B, ch));
    const k2 = load<f32>(rowAt(coef, c, ROW_K2, ch));
    const offset = at4(ch) * <usize>s;
    let p = x + offset, g = dy + offset, o = dx + offset;
    if (ASC_FEATURE_SIMD) {
      const mhv = f32x4.splat(mh), mlv = f32x4.splat(ml);
      const k1v = f32x4.splat(k1), k2v = f32x4.splat(k2), k3v = f32x4.splat(k3);
      for (let i = 0; i < n; i++, p += image, g += image, o += image) {
        const end = p + row;
        let q = p, h = g, r = o;
        for (; q + 16 <= end; q += 16, h += 16, r += 16) {
          const d = f32x4.sub(f32x4.sub(v128.load(q), mhv), mlv);
          v128.store(r, f32x4.add(f32x4.add(f32x4.mul(v128.load(h), k1v), k3v), f32x4.mul(d, k2v)));
        }
        for (; q < end; q += 4, h += 4, r += 4) {
          store<f32>(r, (load<f32>(h) * k1 + k3) + ((load<f32>(q) - mh) - ml) * k2);
        }
      }
    } else {
      for (let i = 0; i < n; i++, p += image, g += image, o += image) {
        const end = p + row;
        let q = p, h = g, r = o;
        for (; q < end; q += 4, h += 4, r += 4) {
          store<f32>(r, (load<f32>(h) * k1 + k3) + ((load<f32>(q) - mh) - ml) * k2);
        }
      }
    }
  }
}
