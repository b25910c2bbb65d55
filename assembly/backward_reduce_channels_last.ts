// Backward reductions per channel of a channels-last tensor [M, C], in one pass over x and dy:
// sumDy = sum(dy) and sumDyXc = sum(dy * (x - mean)) in f64, rows tiled as in stats_channels_last.ts.
import { lo64, hi64, at4, at8 } from "./widen";
import { tileRows } from "./stats_channels_last";

/** Channels [c0, c1): f64 `mean` in, f64 `sumDy` and `sumDyXc` out. */
export function backwardReduceChannelsLast(
  dy: usize, x: usize, rows: i32, c: i32, c0: i32, c1: i32, mean: usize, sumDy: usize, sumDyXc: usize,
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
        const mlo = v128.load(mean + at8(ch)), mhi = v128.load(mean + at8(ch), 16);
        let a0 = f64x2.splat(0), a1 = a0, a2 = a0, a3 = a0;
        let q0 = a0, q1 = a0, q2 = a0, q3 = a0;
        const start = line * <usize>r0 + at4(ch);
        let p = x + start, h = dy + start;
        const end = x + line * <usize>r1 + at4(ch);
        for (; p + line < end; p += line << 1, h += line << 1) {
          const v = v128.load(p), w = v128.load(p + line);
          const e = v128.load(h), f = v128.load(h + line);
          const e0 = lo64(e), e1 = hi64(e), e2 = lo64(f), e3 = hi64(f);
          a0 = f64x2.add(a0, e0); q0 = f64x2.add(q0, f64x2.mul(e0, f64x2.sub(lo64(v), mlo)));
          a1 = f64x2.add(a1, e1); q1 = f64x2.add(q1, f64x2.mul(e1, f64x2.sub(hi64(v), mhi)));
          a2 = f64x2.add(a2, e2); q2 = f64x2.add(q2, f64x2.mul(e2, f64x2.sub(lo64(w), mlo)));
          a3 = f64x2.add(a3, e3); q3 = f64x2.add(q3, f64x2.mul(e3, f64x2.sub(hi64(w), mhi)));
        }
        if (p < end) {
          const v = v128.load(p), e = v128.load(h);
          const e0 = lo64(e), e1 = hi64(e);
          a0 = f64x2.add(a0, e0); q0 = f64x2.add(q0, f64x2.mul(e0, f64x2.sub(lo64(v), mlo)));
          a1 = f64x2.add(a1, e1); q1 = f64x2.add(q1, f64x2.mul(e1, f64x2.sub(hi64(v), mhi)));
        }
        const sd = sumDy + at8(ch), sx = sumDyXc + at8(ch);
        v128.store(sd, f64x2.add(v128.load(sd), f64x2.add(a0, a2)));
        v128.store(sd, f64x2.add(v128.load(sd, 16), f64x2.add(a1, a3)), 16);
        v128.store(sx, f64x2.add(v128.load(sx), f64x2.add(q0, q2)));
        v128.store(sx, f64x2.add(v128.load(sx, 16), f64x2.add(q1, q3)), 16);
      }
    }
    for (; ch < c1; ch++) {
      const m = load<f64>(mean + at8(ch));
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
}
