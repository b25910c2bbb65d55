// y = (x - mh) * a + b per channel of a channels-first tensor [N, C, S], in memory order
// (forward normalize + affine, and eval-mode backward dx = dy * k1; see coefficients.ts), and the
// scaled form y = (x * s - mh * s) * (a / s) + b for channels at the edge of f32's range.
import { at4 } from "./widen";
import { rowAt, ROW_MH, ROW_A, ROW_B, ROW_S, ROW_MHS, ROW_AS } from "./coefficients";

/** Normalizes the row [p, p + bytes) into o; o may equal p. */
@inline function normalizeRow(p: usize, o: usize, bytes: usize, mh: f32, a: f32, b: f32): void {
  const end = p + bytes;
  let q = p, r = o;
  if (ASC_FEATURE_SIMD) {
    const mv = f32x4.splat(mh), av = f32x4.splat(a), bv = f32x4.splat(b);
    for (; q + 64 <= end; q += 64, r += 64) {
      v128.store(r, f32x4.add(f32x4.mul(f32x4.sub(v128.load(q), mv), av), bv));
      v128.store(r, f32x4.add(f32x4.mul(f32x4.sub(v128.load(q, 16), mv), av), bv), 16);
      v128.store(r, f32x4.add(f32x4.mul(f32x4.sub(v128.load(q, 32), mv), av), bv), 32);
      v128.store(r, f32x4.add(f32x4.mul(f32x4.sub(v128.load(q, 48), mv), av), bv), 48);
    }
    for (; q + 16 <= end; q += 16, r += 16) {
      v128.store(r, f32x4.add(f32x4.mul(f32x4.sub(v128.load(q), mv), av), bv));
    }
  } else {
    for (; q + 8 <= end; q += 8, r += 8) {
      const v = load<f32>(q);
      const w = load<f32>(q, 4);
      store<f32>(r, (v - mh) * a + b);
      store<f32>(r, (w - mh) * a + b, 4);
    }
  }
  for (; q < end; q += 4, r += 4) store<f32>(r, (load<f32>(q) - mh) * a + b);
}

/** The scaled form of normalizeRow (rare: channels at the edge of f32's range). */
@inline function normalizeRowScaled(p: usize, o: usize, bytes: usize, s: f32, mhs: f32, as: f32, b: f32): void {
  const end = p + bytes;
  let q = p, r = o;
  if (ASC_FEATURE_SIMD) {
    const sv = f32x4.splat(s), mv = f32x4.splat(mhs), av = f32x4.splat(as), bv = f32x4.splat(b);
    for (; q + 16 <= end; q += 16, r += 16) {
      v128.store(r, f32x4.add(f32x4.mul(f32x4.sub(f32x4.mul(v128.load(q), sv), mv), av), bv));
    }
  }
  for (; q < end; q += 4, r += 4) store<f32>(r, (load<f32>(q) * s - mhs) * as + b);
}

/** Normalizes channels [c0, c1) with the forward coefficient block `coef`; `y` may equal `x`. */
export function normalizeChannelsFirst(
  x: usize, y: usize, n: i32, c: i32, s: i32, c0: i32, c1: i32, coef: usize,
): void {
  const row = at4(s);
  for (let i = 0; i < n; i++) {
    for (let ch = c0; ch < c1; ch++) {
      const offset = at4(i * c + ch) * <usize>s;
      const scale = load<f32>(rowAt(coef, c, ROW_S, ch));
      const b = load<f32>(rowAt(coef, c, ROW_B, ch));
      if (scale == 1) {
        normalizeRow(x + offset, y + offset, row, load<f32>(rowAt(coef, c, ROW_MH, ch)), load<f32>(rowAt(coef, c, ROW_A, ch)), b);
      } else {
        normalizeRowScaled(
          x + offset, y + offset, row, scale, load<f32>(rowAt(coef, c, ROW_MHS, ch)), load<f32>(rowAt(coef, c, ROW_AS, ch)), b,
        );
      }
    }
  }
}
