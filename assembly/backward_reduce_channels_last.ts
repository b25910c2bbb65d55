// Backward reductions per channel of a channels-last tensor [M, C], in one pass over x and dy:
// sumDy = sum(dy) and sumDyXc = sum(dy * (x - mean)), by the scheme of
// backward_reduce_channels_first.ts (f32 within blocks of 16 rows in the SIMD build, f64 across),
// rows tiled as in stats_channels_last.ts.
import { lo64, hi64, at4, at8 } from "./widen";
import { rowAt, ROW_MH, ROW_ML } from "./coefficients";
import { tileRows } from "./stats_channels_last";

/** Channels [c0, c1): the mh/ml rows of `coef` in (the mean), f64 `sumDy` and `sumDyXc` out. */
export function backwardReduceChannelsLast(
  dy: usize, x: usize, rows: i32, c: i32, c0: i32, c1: i32, coef: usize, sumDy: usize, sumDyXc: usize,
): void {
  for (let ch = c0; ch < c1; ch++) {
    store<f64>(sumDy + at8(ch), 0);
    store<f64>(sumDyXc + at8(ch), 0);
  }
  const line = at4(c);
  const tile = tileRows(c);
  for (let r0 = 0; r0 < rows; r0 += tile) {
    const r1 = min(rows, r0 + tile);
    let ch = c0;
    if (ASC_FEATURE_SIMD) {
      for (; ch + 4 <= c1; ch += 4) {
        const mv = v128.load(rowAt(coef, c, ROW_MH, ch));
        let alo = f64x2.splat(0), ahi = alo, blo = alo, bhi = alo;
        const start = line * <usize>r0 + at4(ch);
        let p = x + start, h = dy + start;
        const end = x + line * <usize>r1 + at4(ch);
        const block = line << 4;
        while (p + block <= end) {
          let a0 = f32x4.splat(0), a1 = a0, b0 = a0, b1 = a0;
          for (const stop = p + block; p < stop; p += line << 1, h += line << 1) {
            const e = v128.load(h), f = v128.load(h + line);
            a0 = f32x4.add(a0, e); b0 = f32x4.add(b0, f32x4.mul(e, f32x4.sub(v128.load(p), mv)));
            a1 = f32x4.add(a1, f); b1 = f32x4.add(b1, f32x4.mul(f, f32x4.sub(v128.load(p + line), mv)));
          }
          const u = f32x4.add(a0, a1), v = f32x4.add(b0, b1);
          alo = f64x2.add(alo, lo64(u)); ahi = f64x2.add(ahi, hi64(u));
          blo = f64x2.add(blo, lo64(v)); bhi = f64x2.add(bhi, hi64(v));
        }
        for (; p < end; p += line, h += line) {
          const e = v128.load(h);
          const v = f32x4.mul(e, f32x4.sub(v128.load(p), mv));
          alo = f64x2.add(alo, lo64(e)); ahi = f64x2.add(ahi, hi64(e));
          blo = f64x2.add(blo, lo64(v)); bhi = f64x2.add(bhi, hi64(v));
        }
        const sd = sumDy + at8(ch), sx = sumDyXc + at8(ch);
        v128.store(sd, f64x2.add(v128.load(sd), alo));
        v128.store(sd, f64x2.add(v128.load(sd, 16), ahi), 16);
        v128.store(sx, f64x2.add(v128.load(sx), blo));
        v128.store(sx, f64x2.add(v128.load(sx, 16), bhi), 16);
      }
    }
    for (; ch < c1; ch++) {
      const m = <f64>load<f32>(rowAt(coef, c, ROW_MH, ch));
      let s1: f64 = 0, s2: f64 = 0;
      const start = line * <usize>r0 + at4(ch);
      let p = x + start, h = dy + start;
      const end = x + line * <usize>r1 + at4(ch);
      for (; p < end; p += line, h += line) {
        const e = <f64>load<f32>(h);
        s1 += e; s2 += e * (<f64>load<f32>(p) - m);
      }
      store<f64>(sumDy + at8(ch), load<f64>(sumDy + at8(ch)) + s1);
      store<f64>(sumDyXc + at8(ch), load<f64>(sumDyXc + at8(ch)) + s2);
    }
  }
  // sum(dy * (x - mean)) = sum(dy * (x - mh)) - ml * sum(dy)
  for (let ch = c0; ch < c1; ch++) {
    const ml = <f64>load<f32>(rowAt(coef, c, ROW_ML, ch));
    store<f64>(sumDyXc + at8(ch), load<f64>(sumDyXc + at8(ch)) - ml * load<f64>(sumDy + at8(ch)));
  }
}
