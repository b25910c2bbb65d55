// y = (x - mh) * a + b per channel of a channels-last tensor [M, C]
// (forward normalize + affine, and eval-mode backward dx = dy * k1; see coefficients.ts). When a
// channel is at the edge of f32's range, every channel takes the scaled form
// y = (x * s - mh * s) * (a / s) + b (s = 1 gives the same bits as the plain form). With the fused
// ReLU, y = max(0, y) (relu.ts). normalizeLines also serves the eval-mode dx through a ReLU
// (backward_dx_channels_last.ts), where each input value is gated by the forward output of the same
// element of x; `relu` and `gated` are compile-time constants at every call site.
import { at4 } from "./widen";
import { anyScaled, rowAt, ROW_MH, ROW_A, ROW_B, ROW_S, ROW_MHS, ROW_AS } from "./coefficients";
import { relu1, relu4, gate1, gate4 } from "./relu";

/** The input at p + j (four lanes), gated by the value at t + j and the forward block rows at j when `gated`. */
@inline function in4(p: usize, t: usize, j: usize, gated: bool, gs: usize, gm: usize, ga: usize, gb: usize): v128 {
  if (!gated) return v128.load(p + j);
  return gate4(v128.load(p + j), v128.load(t + j), v128.load(gs + j), v128.load(gm + j), v128.load(ga + j), v128.load(gb + j));
}

/** One input, gated as in4. */
@inline function in1(p: usize, t: usize, j: usize, gated: bool, gs: usize, gm: usize, ga: usize, gb: usize): f32 {
  if (!gated) return load<f32>(p + j);
  return gate1(load<f32>(p + j), load<f32>(t + j), load<f32>(gs + j), load<f32>(gm + j), load<f32>(ga + j), load<f32>(gb + j));
}

/**
 * Channels [c0, c1) of every row with the block `coef`, clamped at 0 with `relu`; with `gated`, the
 * inputs are gated by the tensor `gate` (x's geometry) and the forward block `mask`.
 */
@inline function lines(
  x: usize, y: usize, rows: i32, c: i32, c0: i32, c1: i32, coef: usize, relu: bool, gated: bool, gate: usize, mask: usize,
): void {
  const mp = rowAt(coef, c, ROW_MH, 0), ap = rowAt(coef, c, ROW_A, 0), bp = rowAt(coef, c, ROW_B, 0);
  const gs = rowAt(mask, c, ROW_S, 0), gm = rowAt(mask, c, ROW_MHS, 0), ga = rowAt(mask, c, ROW_AS, 0), gb = rowAt(mask, c, ROW_B, 0);
  const line = at4(c);
  for (let r = 0; r < rows; r++) {
    const p = x + line * <usize>r, o = y + line * <usize>r, t = gate + line * <usize>r;
    let ch = c0;
    if (ASC_FEATURE_SIMD) {
      for (; ch + 4 <= c1; ch += 4) {
        const j = at4(ch);
        const u = f32x4.add(f32x4.mul(f32x4.sub(in4(p, t, j, gated, gs, gm, ga, gb), v128.load(mp + j)), v128.load(ap + j)), v128.load(bp + j));
        v128.store(o + j, relu ? relu4(u) : u);
      }
    }
    for (; ch < c1; ch++) {
      const j = at4(ch);
      const u = (in1(p, t, j, gated, gs, gm, ga, gb) - load<f32>(mp + j)) * load<f32>(ap + j) + load<f32>(bp + j);
      store<f32>(o + j, relu ? relu1(u) : u);
    }
  }
}

/** The scaled form of lines for every channel (rare). */
@inline function linesScaled(
  x: usize, y: usize, rows: i32, c: i32, c0: i32, c1: i32, coef: usize, relu: bool, gated: bool, gate: usize, mask: usize,
): void {
  const sp = rowAt(coef, c, ROW_S, 0), mp = rowAt(coef, c, ROW_MHS, 0);
  const ap = rowAt(coef, c, ROW_AS, 0), bp = rowAt(coef, c, ROW_B, 0);
  const gs = rowAt(mask, c, ROW_S, 0), gm = rowAt(mask, c, ROW_MHS, 0), ga = rowAt(mask, c, ROW_AS, 0), gb = rowAt(mask, c, ROW_B, 0);
  const line = at4(c);
  for (let r = 0; r < rows; r++) {
    const p = x + line * <usize>r, o = y + line * <usize>r, t = gate + line * <usize>r;
    let ch = c0;
    if (ASC_FEATURE_SIMD) {
      for (; ch + 4 <= c1; ch += 4) {
        const j = at4(ch);
        const v = f32x4.sub(f32x4.mul(in4(p, t, j, gated, gs, gm, ga, gb), v128.load(sp + j)), v128.load(mp + j));
        const u = f32x4.add(f32x4.mul(v, v128.load(ap + j)), v128.load(bp + j));
        v128.store(o + j, relu ? relu4(u) : u);
      }
    }
    for (; ch < c1; ch++) {
      const j = at4(ch);
      const u = (in1(p, t, j, gated, gs, gm, ga, gb) * load<f32>(sp + j) - load<f32>(mp + j)) * load<f32>(ap + j) + load<f32>(bp + j);
      store<f32>(o + j, relu ? relu1(u) : u);
    }
  }
}

/** normalizeLines in the form the block's channels call for (the scaled one when any channel is scaled: rare). */
@inline export function normalizeLines(
  x: usize, y: usize, rows: i32, c: i32, c0: i32, c1: i32, coef: usize, relu: bool, gated: bool, gate: usize, mask: usize,
): void {
  if (anyScaled(coef, c, c0, c1)) linesScaled(x, y, rows, c, c0, c1, coef, relu, gated, gate, mask);
  else lines(x, y, rows, c, c0, c1, coef, relu, gated, gate, mask);
}

/**
 * Normalizes channels [c0, c1) of every row with the forward coefficient block; `y` may equal `x`.
 * `relu`: y = max(0, y), the fused ReLU.
 */
export function normalizeChannelsLast(
  x: usize, y: usize, rows: i32, c: i32, c0: i32, c1: i32, coef: usize, relu: bool,
): void {
  if (relu) normalizeLines(x, y, rows, c, c0, c1, coef, true, false, 0, 0);
  else normalizeLines(x, y, rows, c, c0, c1, coef, false, false, 0, 0);
}
