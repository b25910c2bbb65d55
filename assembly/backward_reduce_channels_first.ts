// Backward reductions per channel of a channels-first tensor [N, C, S], in one pass over x and dy
// in memory order: sumDy = sum(dy) and sumDyXc = sum(dy * (x - mean)). The SIMD build sums in f32
// within blocks of 256 values (x - mh exact near the mean, mh + ml being the f32 pair for the mean)
// and in f64 across blocks; the scalar build sums in f64.
import { lo64, hi64, sum64, at4, at8 } from "./widen";
import { rowAt, ROW_MH, ROW_ML } from "./coefficients";

/** Adds sum(g) and sum(g * (x - mh)) over the row [p, end) of x (g: the same row of dy). */
@inline function reduceRow(p: usize, g: usize, end: usize, mh: f32, sum1: usize, sum2: usize): void {
  let s1: f64 = 0, s2: f64 = 0;
  let q = p, h = g;
  if (ASC_FEATURE_SIMD) {
    const mv = f32x4.splat(mh);
    let a = f64x2.splat(0), b = a;
    // blocks of up to 256 values: one f64 flush per block (rows of small planes are one block)
    while (q + 16 <= end) {
      const stop = min(q + 1024, end);
      let a0 = f32x4.splat(0), a1 = a0, b0 = a0, b1 = a0;
      for (; q + 32 <= stop; q += 32, h += 32) {
        const e = v128.load(h), f = v128.load(h, 16);
        a0 = f32x4.add(a0, e); b0 = f32x4.add(b0, f32x4.mul(e, f32x4.sub(v128.load(q), mv)));
        a1 = f32x4.add(a1, f); b1 = f32x4.add(b1, f32x4.mul(f, f32x4.sub(v128.load(q, 16), mv)));
      }
      if (q + 16 <= stop) {
        const e = v128.load(h);
        a0 = f32x4.add(a0, e); b0 = f32x4.add(b0, f32x4.mul(e, f32x4.sub(v128.load(q), mv)));
        q += 16; h += 16;
      }
      const u = f32x4.add(a0, a1), v = f32x4.add(b0, b1);
      a = f64x2.add(a, f64x2.add(lo64(u), hi64(u)));
      b = f64x2.add(b, f64x2.add(lo64(v), hi64(v)));
    }
    s1 = sum64(a); s2 = sum64(b);
  } else {
    const m = <f64>mh;
    let t1: f64 = 0, t2: f64 = 0;
    for (; q + 8 <= end; q += 8, h += 8) {
      const e0 = <f64>load<f32>(h), e1 = <f64>load<f32>(h, 4);
      s1 += e0; s2 += e0 * (<f64>load<f32>(q) - m);
      t1 += e1; t2 += e1 * (<f64>load<f32>(q, 4) - m);
    }
    s1 += t1; s2 += t2;
  }
  for (; q < end; q += 4, h += 4) {
    const e = load<f32>(h);
    s1 += <f64>e; s2 += <f64>e * <f64>(load<f32>(q) - mh);
  }
  store<f64>(sum1, load<f64>(sum1) + s1);
  store<f64>(sum2, load<f64>(sum2) + s2);
}

/** Channels [c0, c1): the mh/ml rows of `coef` in (the mean), f64 `sumDy` and `sumDyXc` out. */
export function backwardReduceChannelsFirst(
  dy: usize, x: usize, n: i32, c: i32, s: i32, c0: i32, c1: i32, coef: usize, sumDy: usize, sumDyXc: usize,
): void {
  for (let ch = c0; ch < c1; ch++) {
    store<f64>(sumDy + at8(ch), 0);
    store<f64>(sumDyXc + at8(ch), 0);
  }
  const row = at4(s);
  for (let i = 0; i < n; i++) {
    for (let ch = c0; ch < c1; ch++) {
      const offset = at4(i * c + ch) * <usize>s;
      reduceRow(x + offset, dy + offset, x + offset + row, load<f32>(rowAt(coef, c, ROW_MH, ch)), sumDy + at8(ch), sumDyXc + at8(ch));
    }
  }
  // sum(dy * (x - mean)) = sum(dy * (x - mh)) - ml * sum(dy)
  for (let ch = c0; ch < c1; ch++) {
    const ml = <f64>load<f32>(rowAt(coef, c, ROW_ML, ch));
    store<f64>(sumDyXc + at8(ch), load<f64>(sumDyXc + at8(ch)) - ml * load<f64>(sumDy + at8(ch)));
  }
}
