// Training-mode dx = dy * k1 + (x - mh) * k2 + k3 per channel of a channels-first tensor [N, C, S],
// in memory order (coefficients from backwardCoefficients; dx may equal dy), and the scaled form
// dx = k1 * ((dy - c3) - ((x * s - mh * s) - ml * s) * (invstd / s) * c2) for channels at the edge
// of f32's range (see coefficients.ts).
import { at4 } from "./widen";
import { rowAt, ROW_MH, ROW_A, ROW_B, ROW_K2, ROW_S, ROW_MHS, ROW_MLS, ROW_AS, ROW_C2, ROW_C3 } from "./coefficients";

/** One row: x at p, dy at g, dx to o. */
@inline function dxRow(p: usize, g: usize, o: usize, bytes: usize, mh: f32, k1: f32, k2: f32, k3: f32): void {
  const end = p + bytes;
  let q = p, h = g, r = o;
  if (ASC_FEATURE_SIMD) {
    const mv = f32x4.splat(mh), k1v = f32x4.splat(k1), k2v = f32x4.splat(k2), k3v = f32x4.splat(k3);
    for (; q + 32 <= end; q += 32, h += 32, r += 32) {
      const d = f32x4.mul(f32x4.sub(v128.load(q), mv), k2v);
      const e = f32x4.mul(f32x4.sub(v128.load(q, 16), mv), k2v);
      v128.store(r, f32x4.add(f32x4.add(f32x4.mul(v128.load(h), k1v), k3v), d));
      v128.store(r, f32x4.add(f32x4.add(f32x4.mul(v128.load(h, 16), k1v), k3v), e), 16);
    }
    if (q + 16 <= end) {
      const d = f32x4.mul(f32x4.sub(v128.load(q), mv), k2v);
      v128.store(r, f32x4.add(f32x4.add(f32x4.mul(v128.load(h), k1v), k3v), d));
      q += 16; h += 16; r += 16;
    }
  }
  for (; q < end; q += 4, h += 4, r += 4) {
    store<f32>(r, (load<f32>(h) * k1 + k3) + (load<f32>(q) - mh) * k2);
  }
}

/** The scaled form of dxRow (rare). */
@inline function dxRowScaled(
  p: usize, g: usize, o: usize, bytes: usize, k1: f32, s: f32, mhs: f32, mls: f32, rs: f32, c2: f32, c3: f32,
): void {
  const end = p + bytes;
  let q = p, h = g, r = o;
  if (ASC_FEATURE_SIMD) {
    const k1v = f32x4.splat(k1), sv = f32x4.splat(s), mv = f32x4.splat(mhs), lv = f32x4.splat(mls);
    const rv = f32x4.splat(rs), c2v = f32x4.splat(c2), c3v = f32x4.splat(c3);
    for (; q + 16 <= end; q += 16, h += 16, r += 16) {
      const xhat = f32x4.mul(f32x4.sub(f32x4.sub(f32x4.mul(v128.load(q), sv), mv), lv), rv);
      v128.store(r, f32x4.mul(f32x4.sub(f32x4.sub(v128.load(h), c3v), f32x4.mul(xhat, c2v)), k1v));
    }
  }
  for (; q < end; q += 4, h += 4, r += 4) {
    const xhat = ((load<f32>(q) * s - mhs) - mls) * rs;
    store<f32>(r, ((load<f32>(h) - c3) - xhat * c2) * k1);
  }
}

/** Channels [c0, c1) with the backward coefficient block `coef`. */
export function backwardDxChannelsFirst(
  dy: usize, x: usize, dx: usize, n: i32, c: i32, s: i32, c0: i32, c1: i32, coef: usize,
): void {
  const row = at4(s);
  for (let i = 0; i < n; i++) {
    for (let ch = c0; ch < c1; ch++) {
      const offset = at4(i * c + ch) * <usize>s;
      const scale = load<f32>(rowAt(coef, c, ROW_S, ch));
      const k1 = load<f32>(rowAt(coef, c, ROW_A, ch));
      if (scale == 1) {
        dxRow(
          x + offset, dy + offset, dx + offset, row, load<f32>(rowAt(coef, c, ROW_MH, ch)), k1,
          load<f32>(rowAt(coef, c, ROW_K2, ch)), load<f32>(rowAt(coef, c, ROW_B, ch)),
        );
      } else {
        dxRowScaled(
          x + offset, dy + offset, dx + offset, row, k1, scale, load<f32>(rowAt(coef, c, ROW_MHS, ch)),
          load<f32>(rowAt(coef, c, ROW_MLS, ch)), load<f32>(rowAt(coef, c, ROW_AS, ch)),
          load<f32>(rowAt(coef, c, ROW_C2, ch)), load<f32>(rowAt(coef, c, ROW_C3, ch)),
        );
      }
    }
  }
}
