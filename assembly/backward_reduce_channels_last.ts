// Backward reductions per channel of a channels-last tensor [M, C], in one pass over x and dy in
// memory order: sumDy += sum(dy) and sumDyXc += sum(dy * (x - mean)), in f64 from values widened
// exactly, as backward_reduce_channels_first.ts. The kernels add into their outputs. Through a fused
// ReLU, dy is taken as 0 where the forward output was <= 0 (relu.ts), in the same pass.
import { lo64, hi64, at4, at8 } from "./widen";
import { rowAt, ROW_S, ROW_MHS, ROW_AS, ROW_B } from "./coefficients";
import { gate4, gateAt } from "./relu";

/** Adds f64x2 `v` into the f64 pair at `w`. */
@inline function addTo(w: usize, v: v128): void {
  v128.store(w, f64x2.add(v128.load(w), v));
}

/** Channels [c0, c1), gated by the forward block `mask` when `gated`. */
@inline function reduceRange(
  dy: usize, x: usize, rows: i32, c: i32, c0: i32, c1: i32, mean: usize, sumDy: usize, sumDyXc: usize, gated: bool, mask: usize,
): void {
  const line = at4(c);
  const gs = rowAt(mask, c, ROW_S, 0), gm = rowAt(mask, c, ROW_MHS, 0), ga = rowAt(mask, c, ROW_AS, 0), gb = rowAt(mask, c, ROW_B, 0);
  let r = 0;
  if (ASC_FEATURE_SIMD) {
    // two rows at a time share each load and store of the f64 sums
    for (; r + 2 <= rows; r += 2) {
      const p = x + line * <usize>r, g = dy + line * <usize>r;
      let ch = c0;
      for (; ch + 4 <= c1; ch += 4) {
        const j = at4(ch), w = at8(ch);
        const ml = v128.load(mean + w), mh = v128.load(mean + w, 16);
        const v0 = v128.load(p + j), v1 = v128.load(p + line + j);
        let e0 = v128.load(g + j), e1 = v128.load(g + line + j);
        if (gated) {
          const s = v128.load(gs + j), m = v128.load(gm + j), a = v128.load(ga + j), b = v128.load(gb + j);
          e0 = gate4(e0, v0, s, m, a, b);
          e1 = gate4(e1, v1, s, m, a, b);
        }
        const e0l = lo64(e0), e0h = hi64(e0), e1l = lo64(e1), e1h = hi64(e1);
        addTo(sumDy + w, f64x2.add(e0l, e1l));
        addTo(sumDy + w + 16, f64x2.add(e0h, e1h));
        const ql = f64x2.add(f64x2.mul(e0l, f64x2.sub(lo64(v0), ml)), f64x2.mul(e1l, f64x2.sub(lo64(v1), ml)));
        const qh = f64x2.add(f64x2.mul(e0h, f64x2.sub(hi64(v0), mh)), f64x2.mul(e1h, f64x2.sub(hi64(v1), mh)));
        addTo(sumDyXc + w, ql);
        addTo(sumDyXc + w + 16, qh);
      }
      for (; ch < c1; ch++) {
        const j = at4(ch), w = at8(ch);
        const m = load<f64>(mean + w);
        const x0 = load<f32>(p + j), x1 = load<f32>(p + line + j);
        const e0 = <f64>(gated ? gateAt(load<f32>(g + j), x0, mask, c, ch) : load<f32>(g + j));
        const e1 = <f64>(gated ? gateAt(load<f32>(g + line + j), x1, mask, c, ch) : load<f32>(g + line + j));
        store<f64>(sumDy + w, load<f64>(sumDy + w) + (e0 + e1));
        const t = e0 * (<f64>x0 - m) + e1 * (<f64>x1 - m);
        store<f64>(sumDyXc + w, load<f64>(sumDyXc + w) + t);
      }
    }
  }
  for (; r < rows; r++) {
    const p = x + line * <usize>r, g = dy + line * <usize>r;
    for (let ch = c0; ch < c1; ch++) {
      const j = at4(ch), w = at8(ch);
      const x0 = load<f32>(p + j);
      const e = <f64>(gated ? gateAt(load<f32>(g + j), x0, mask, c, ch) : load<f32>(g + j));
      store<f64>(sumDy + w, load<f64>(sumDy + w) + e);
      store<f64>(sumDyXc + w, load<f64>(sumDyXc + w) + e * (<f64>x0 - load<f64>(mean + w)));
    }
  }
}

/**
 * Channels [c0, c1): f64 `mean` in, f64 `sumDy` and `sumDyXc` added to. `mask`: the forward block of
 * a fused ReLU (maskCoefficients), or 0 for none.
 */
export function backwardReduceChannelsLast(
  dy: usize, x: usize, rows: i32, c: i32, c0: i32, c1: i32, mean: usize, sumDy: usize, sumDyXc: usize, mask: usize,
): void {
  if (mask) reduceRange(dy, x, rows, c, c0, c1, mean, sumDy, sumDyXc, true, mask);
  else reduceRange(dy, x, rows, c, c0, c1, mean, sumDy, sumDyXc, false, 0);
}
