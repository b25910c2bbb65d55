// y = (x - mh) * a + b per channel of a channels-first tensor [N, C, S], in memory order
// (forward normalize + affine, and eval-mode backward dx = dy * k1; see coefficients.ts).
import { at4 } from "./widen";
import { rowAt, ROW_MH, ROW_A, ROW_B } from "./coefficients";

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

/** Normalizes channels [c0, c1) with the forward coefficient block `coef`; `y` may equal `x`. */
export function normalizeChannelsFirst(
  x: usize, y: usize, n: i32, c: i32, s: i32, c0: i32, c1: i32, coef: usize,
): void {
  const row = at4(s);
  for (let i = 0; i < n; i++) {
    for (let ch = c0; ch < c1; ch++) {
      const offset = at4(i * c + ch) * <usize>s;
      normalizeRow(
        x + offset, y + offset, row, load<f32>(rowAt(coef, c, ROW_MH, ch)),
        load<f32>(rowAt(coef, c, ROW_A, ch)), load<f32>(rowAt(coef, c, ROW_B, ch)),
      );
    }
  }
}
