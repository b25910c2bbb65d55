// Backward reductions per channel of a channels-first tensor [N, C, S], in one pass over x and dy
// in memory order: sumDy += sum(dy) and sumDyXc += sum(dy * (x - mean)), both in f64 from values
// widened exactly (torch accumulates these in double), so dbias and dweight are float64-grade even
// where the sums cancel. The kernels add into their outputs: a caller can split rows or channels and
// add the partial sums. Through a fused ReLU, dy is taken as 0 where the forward output was <= 0,
// recomputed from x with the forward block (relu.ts), in the same pass.
import { lo64, hi64, sum64, at4, at8 } from "./widen";
import { rowAt, ROW_S, ROW_MHS, ROW_AS, ROW_B } from "./coefficients";
import { gate1, gate4 } from "./relu";

/**
 * Adds sum(g) and sum(g * (x - m)) over the row [p, end) of x (g: the same row of dy); with `gated`,
 * each g is gated by its x and the forward block constants gs, gm, ga, gb (see relu.ts).
 */
@inline function reduceRow(
  p: usize, g: usize, end: usize, m: f64, sum1: usize, sum2: usize, gated: bool, gs: f32, gm: f32, ga: f32, gb: f32,
): void {
  let s1: f64 = 0, s2: f64 = 0;
  let q = p, h = g;
  if (ASC_FEATURE_SIMD) {
    const mv = f64x2.splat(m);
    const gsv = f32x4.splat(gs), gmv = f32x4.splat(gm), gav = f32x4.splat(ga), gbv = f32x4.splat(gb);
    let a0 = f64x2.splat(0), a1 = a0, b0 = a0, b1 = a0;
    for (; q + 16 <= end; q += 16, h += 16) {
      const v = v128.load(q);
      const e = gated ? gate4(v128.load(h), v, gsv, gmv, gav, gbv) : v128.load(h);
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
      const x0 = load<f32>(q), x1 = load<f32>(q, 4);
      const e0 = <f64>(gated ? gate1(load<f32>(h), x0, gs, gm, ga, gb) : load<f32>(h));
      const e1 = <f64>(gated ? gate1(load<f32>(h, 4), x1, gs, gm, ga, gb) : load<f32>(h, 4));
      s1 += e0; s2 += e0 * (<f64>x0 - m);
      t1 += e1; t2 += e1 * (<f64>x1 - m);
    }
    s1 += t1; s2 += t2;
  }
  for (; q < end; q += 4, h += 4) {
    const x0 = load<f32>(q);
    const e = <f64>(gated ? gate1(load<f32>(h), x0, gs, gm, ga, gb) : load<f32>(h));
    s1 += e; s2 += e * (<f64>x0 - m);
  }
  store<f64>(sum1, load<f64>(sum1) + s1);
  store<f64>(sum2, load<f64>(sum2) + s2);
}

/** Channels [c0, c1), gated by the forward block `mask` when `gated`. */
@inline function reduceRange(
  dy: usize, x: usize, n: i32, c: i32, s: i32, c0: i32, c1: i32, mean: usize, sumDy: usize, sumDyXc: usize, gated: bool, mask: usize,
): void {
  const row = at4(s);
  for (let i = 0; i < n; i++) {
    for (let ch = c0; ch < c1; ch++) {
      const offset = at4(i * c + ch) * <usize>s;
      const gs = gated ? load<f32>(rowAt(mask, c, ROW_S, ch)) : 0;
      const gm = gated ? load<f32>(rowAt(mask, c, ROW_MHS, ch)) : 0;
      const ga = gated ? load<f32>(rowAt(mask, c, ROW_AS, ch)) : 0;
      const gb = gated ? load<f32>(rowAt(mask, c, ROW_B, ch)) : 0;
      reduceRow(
        x + offset, dy + offset, x + offset + row, load<f64>(mean + at8(ch)), sumDy + at8(ch), sumDyXc + at8(ch), gated, gs, gm, ga, gb,
      );
    }
  }
}

/**
 * Channels [c0, c1): f64 `mean` in, f64 `sumDy` and `sumDyXc` added to. `mask`: the forward block of
 * a fused ReLU (maskCoefficients), or 0 for none.
 */
export function backwardReduceChannelsFirst(
  dy: usize, x: usize, n: i32, c: i32, s: i32, c0: i32, c1: i32, mean: usize, sumDy: usize, sumDyXc: usize, mask: usize,
): void {
  if (mask) reduceRange(dy, x, n, c, s, c0, c1, mean, sumDy, sumDyXc, true, mask);
  else reduceRange(dy, x, n, c, s, c0, c1, mean, sumDy, sumDyXc, false, 0);
}
