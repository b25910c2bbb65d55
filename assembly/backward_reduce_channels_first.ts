// Backward reductions per channel of a channels-first tensor [N, C, S], in one pass over x and dy
// in memory order: sumDy += sum(dy) and sumDyXc += sum(dy * (x - mean)), both in f64 from values
// widened exactly (torch accumulates these in double), so dbias and dweight are float64-grade even
// where the sums cancel. The kernels add into their outputs: a caller can split rows or channels and
// add the partial sums.
import { lo64, hi64, sum64, at4, at8 } from "./widen";

/** Adds sum(g) and sum(g * (x - m)) over the row [p, end) of x (g: the same row of dy). */
@inline function reduceRow(p: usize, g: usize, end: usize, m: f64, sum1: usize, sum2: usize): void {
  let s1: f64 = 0, s2: f64 = 0;
  let q = p, h = g;
  if (ASC_FEATURE_SIMD) {
    const mv = f64x2.splat(m);
    let a0 = f64x2.splat(0), a1 = a0, b0 = a0, b1 = a0;
    for (; q + 16 <= end; q += 16, h += 16) {
      const e = v128.load(h), v = v128.load(q);
      const el = lo64(e), eh = hi64(e);
      a0 = f64x2.add(a0, el);
      a1 = f64x2.add(a1, eh);
      b0 = f64x2.add(b0, f64x2.mul(el, f64x2.sub(lo64(v), mv)));
      b1 = f64x2.add(b1, f64x2.mul(eh, f64x2.sub(hi64(v), mv)));
    }
    s1 = sum64(f64x2.add(a0, a1));
    s2 = sum64(f64x2.add(b0, b1));
  } else {
    let t1: f64 = 0, t2: f64 = 0;
    for (; q + 8 <= end; q += 8, h += 8) {
      const e0 = <f64>load<f32>(h), e1 = <f64>load<f32>(h, 4);
      s1 += e0; s2 += e0 * (<f64>load<f32>(q) - m);
      t1 += e1; t2 += e1 * (<f64>load<f32>(q, 4) - m);
    }
    s1 += t1; s2 += t2;
  }
  for (; q < end; q += 4, h += 4) {
    const e = <f64>load<f32>(h);
    s1 += e; s2 += e * (<f64>load<f32>(q) - m);
  }
  store<f64>(sum1, load<f64>(sum1) + s1);
  store<f64>(sum2, load<f64>(sum2) + s2);
}

/** Channels [c0, c1): f64 `mean` in, f64 `sumDy` and `sumDyXc` added to. */
export function backwardReduceChannelsFirst(
  dy: usize, x: usize, n: i32, c: i32, s: i32, c0: i32, c1: i32, mean: usize, sumDy: usize, sumDyXc: usize,
): void {
  const row = at4(s);
  for (let i = 0; i < n; i++) {
    for (let ch = c0; ch < c1; ch++) {
      const offset = at4(i * c + ch) * <usize>s;
      reduceRow(x + offset, dy + offset, x + offset + row, load<f64>(mean + at8(ch)), sumDy + at8(ch), sumDyXc + at8(ch));
    }
  }
}
