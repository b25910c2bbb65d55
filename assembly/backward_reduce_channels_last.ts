// Backward reductions per channel of a channels-last tensor [M, C], in one pass over x and dy in
// memory order: sumDy += sum(dy) and sumDyXc += sum(dy * (x - mean)), in f64 from values widened
// exactly, as backward_reduce_channels_first.ts. The kernels add into their outputs.
import { lo64, hi64, at4, at8 } from "./widen";

/** Adds f64x2 `v` into the f64 pair at `w`. */
@inline function addTo(w: usize, v: v128): void {
  v128.store(w, f64x2.add(v128.load(w), v));
}

/** Channels [c0, c1): f64 `mean` in, f64 `sumDy` and `sumDyXc` added to. */
export function backwardReduceChannelsLast(
  dy: usize, x: usize, rows: i32, c: i32, c0: i32, c1: i32, mean: usize, sumDy: usize, sumDyXc: usize,
): void {
  const line = at4(c);
  let r = 0;
  if (ASC_FEATURE_SIMD) {
    // two rows at a time share each load and store of the f64 sums
    for (; r + 2 <= rows; r += 2) {
      const p = x + line * <usize>r, g = dy + line * <usize>r;
      let ch = c0;
      for (; ch + 4 <= c1; ch += 4) {
        const j = at4(ch), w = at8(ch);
        const ml = v128.load(mean + w), mh = v128.load(mean + w, 16);
        const e0 = v128.load(g + j), e1 = v128.load(g + line + j);
        const v0 = v128.load(p + j), v1 = v128.load(p + line + j);
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
        const e0 = <f64>load<f32>(g + j), e1 = <f64>load<f32>(g + line + j);
        store<f64>(sumDy + w, load<f64>(sumDy + w) + (e0 + e1));
        const t = e0 * (<f64>load<f32>(p + j) - m) + e1 * (<f64>load<f32>(p + line + j) - m);
        store<f64>(sumDyXc + w, load<f64>(sumDyXc + w) + t);
      }
    }
  }
  for (; r < rows; r++) {
    const p = x + line * <usize>r, g = dy + line * <usize>r;
    for (let ch = c0; ch < c1; ch++) {
      const j = at4(ch), w = at8(ch);
      const e = <f64>load<f32>(g + j);
      store<f64>(sumDy + w, load<f64>(sumDy + w) + e);
      store<f64>(sumDyXc + w, load<f64>(sumDyXc + w) + e * (<f64>load<f32>(p + j) - load<f64>(mean + w)));
    }
  }
}
