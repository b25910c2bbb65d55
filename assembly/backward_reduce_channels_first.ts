// Backward reductions per channel of a channels-first tensor [N, C, S], in one pass over x and dy:
// sumDy = sum(dy) and sumDyXc = sum(dy * (x - mean)), accumulated in f64 with x - mean in f64.
import { lo64, hi64, sum64, at4, at8 } from "./widen";

/** Channels [c0, c1): f64 `mean` in, f64 `sumDy` and `sumDyXc` out. */
export function backwardReduceChannelsFirst(
  dy: usize, x: usize, n: i32, c: i32, s: i32, c0: i32, c1: i32, mean: usize, sumDy: usize, sumDyXc: usize,
): void {
  const image = at4(c) * <usize>s;
  const row = at4(s);
  for (let ch = c0; ch < c1; ch++) {
    const m = load<f64>(mean + at8(ch));
    const offset = at4(ch) * <usize>s;
    let p = x + offset, g = dy + offset;
    let s1: f64 = 0, s2: f64 = 0;
    if (ASC_FEATURE_SIMD) {
      const mv = f64x2.splat(m);
      let a0 = f64x2.splat(0), a1 = a0, a2 = a0, a3 = a0;
      let q0 = a0, q1 = a0, q2 = a0, q3 = a0;
      for (let i = 0; i < n; i++, p += image, g += image) {
        const end = p + row;
        let q = p, h = g;
        for (; q + 32 <= end; q += 32, h += 32) {
          const v = v128.load(q), w = v128.load(q, 16);
          const e = v128.load(h), f = v128.load(h, 16);
          const e0 = lo64(e), e1 = hi64(e), e2 = lo64(f), e3 = hi64(f);
          a0 = f64x2.add(a0, e0); q0 = f64x2.add(q0, f64x2.mul(e0, f64x2.sub(lo64(v), mv)));
          a1 = f64x2.add(a1, e1); q1 = f64x2.add(q1, f64x2.mul(e1, f64x2.sub(hi64(v), mv)));
          a2 = f64x2.add(a2, e2); q2 = f64x2.add(q2, f64x2.mul(e2, f64x2.sub(lo64(w), mv)));
          a3 = f64x2.add(a3, e3); q3 = f64x2.add(q3, f64x2.mul(e3, f64x2.sub(hi64(w), mv)));
        }
        if (q + 16 <= end) {
          const v = v128.load(q), e = v128.load(h);
          const e0 = lo64(e), e1 = hi64(e);
          a0 = f64x2.add(a0, e0); q0 = f64x2.add(q0, f64x2.mul(e0, f64x2.sub(lo64(v), mv)));
          a1 = f64x2.add(a1, e1); q1 = f64x2.add(q1, f64x2.mul(e1, f64x2.sub(hi64(v), mv)));
          q += 16; h += 16;
        }
        for (; q < end; q += 4, h += 4) {
          const e = <f64>load<f32>(h);
          s1 += e; s2 += e * (<f64>load<f32>(q) - m);
        }
      }
      s1 += sum64(f64x2.add(f64x2.add(a0, a1), f64x2.add(a2, a3)));
      s2 += sum64(f64x2.add(f64x2.add(q0, q1), f64x2.add(q2, q3)));
    } else {
      let t1: f64 = 0, t2: f64 = 0;
      for (let i = 0; i < n; i++, p += image, g += image) {
        const end = p + row;
        let q = p, h = g;
        for (; q + 8 <= end; q += 8, h += 8) {
          const e0 = <f64>load<f32>(h), e1 = <f64>load<f32>(h, 4);
          s1 += e0; s2 += e0 * (<f64>load<f32>(q) - m);
          t1 += e1; t2 += e1 * (<f64>load<f32>(q, 4) - m);
        }
        if (q < end) {
          const e = <f64>load<f32>(h);
          s1 += e; s2 += e * (<f64>load<f32>(q) - m);
        }
      }
      s1 += t1; s2 += t2;
    }
    store<f64>(sumDy + at8(ch), s1);
    store<f64>(sumDyXc + at8(ch), s2);
  }
}
