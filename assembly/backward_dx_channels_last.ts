// Training-mode dx = dy * k1 + (x - mh) * k2 + k3 per channel of a channels-last tensor [M, C]
// (coefficients from backwardCoefficients; dx may equal dy). When a channel is at the edge of f32's
// range, channels take the scaled form of coefficients.ts per row, each by its own scale. Through a
// fused ReLU, dy is taken as 0 where the forward output was <= 0, recomputed from x with the forward
// block (relu.ts); backwardDxEval is the eval-mode dx = dy * k1 through a ReLU.
import { at4 } from "./widen";
import {
  anyScaled, rowAt, ROW_MH, ROW_A, ROW_B, ROW_K2, ROW_S, ROW_MHS, ROW_MLS, ROW_AS, ROW_C2, ROW_C3,
} from "./coefficients";
import { gate4, gateAt } from "./relu";
import { normalizeLines } from "./normalize_channels_last";

/** Channels [c0, c1) of every row (no channel scaled), gated by the forward block `mask` when `gated`. */
@inline function dxLines(
  dy: usize, x: usize, dx: usize, rows: i32, c: i32, c0: i32, c1: i32, coef: usize, gated: bool, mask: usize,
): void {
  const mp = rowAt(coef, c, ROW_MH, 0), k1p = rowAt(coef, c, ROW_A, 0);
  const k3p = rowAt(coef, c, ROW_B, 0), k2p = rowAt(coef, c, ROW_K2, 0);
  const gs = rowAt(mask, c, ROW_S, 0), gm = rowAt(mask, c, ROW_MHS, 0), ga = rowAt(mask, c, ROW_AS, 0), gb = rowAt(mask, c, ROW_B, 0);
  const line = at4(c);
  for (let r = 0; r < rows; r++) {
    const base = line * <usize>r;
    const p = x + base, g = dy + base, o = dx + base;
    let ch = c0;
    if (ASC_FEATURE_SIMD) {
      for (; ch + 4 <= c1; ch += 4) {
        const j = at4(ch);
        const v = v128.load(p + j);
        let e = v128.load(g + j);
        if (gated) e = gate4(e, v, v128.load(gs + j), v128.load(gm + j), v128.load(ga + j), v128.load(gb + j));
        const d = f32x4.mul(f32x4.sub(v, v128.load(mp + j)), v128.load(k2p + j));
        v128.store(o + j, f32x4.add(f32x4.add(f32x4.mul(e, v128.load(k1p + j)), v128.load(k3p + j)), d));
      }
    }
    for (; ch < c1; ch++) {
      const j = at4(ch);
      const v = load<f32>(p + j);
      const e = gated ? gateAt(load<f32>(g + j), v, mask, c, ch) : load<f32>(g + j);
      const d = (v - load<f32>(mp + j)) * load<f32>(k2p + j);
      store<f32>(o + j, (e * load<f32>(k1p + j) + load<f32>(k3p + j)) + d);
    }
  }
}

/** Element by element, each channel in its own form (rare: some channel is scaled); gated as dxLines. */
@inline function dxMixed(
  dy: usize, x: usize, dx: usize, rows: i32, c: i32, c0: i32, c1: i32, coef: usize, gated: bool, mask: usize,
): void {
  const line = at4(c);
  for (let r = 0; r < rows; r++) {
    const base = line * <usize>r;
    for (let ch = c0; ch < c1; ch++) {
      const j = base + at4(ch);
      const xv = load<f32>(x + j);
      const g = gated ? gateAt(load<f32>(dy + j), xv, mask, c, ch) : load<f32>(dy + j);
      const s = load<f32>(rowAt(coef, c, ROW_S, ch)), k1 = load<f32>(rowAt(coef, c, ROW_A, ch));
      if (s == 1) {
        const d = (xv - load<f32>(rowAt(coef, c, ROW_MH, ch))) * load<f32>(rowAt(coef, c, ROW_K2, ch));
        store<f32>(dx + j, (g * k1 + load<f32>(rowAt(coef, c, ROW_B, ch))) + d);
      } else {
        const xhat = ((xv * s - load<f32>(rowAt(coef, c, ROW_MHS, ch))) - load<f32>(rowAt(coef, c, ROW_MLS, ch))) * load<f32>(rowAt(coef, c, ROW_AS, ch));
        store<f32>(dx + j, ((g - load<f32>(rowAt(coef, c, ROW_C3, ch))) - xhat * load<f32>(rowAt(coef, c, ROW_C2, ch))) * k1);
      }
    }
  }
}

/**
 * Channels [c0, c1) of every row with the backward coefficient block `coef`. `mask`: the forward
 * block of a fused ReLU (maskCoefficients), or 0 for none.
 */
export function backwardDxChannelsLast(
  dy: usize, x: usize, dx: usize, rows: i32, c: i32, c0: i32, c1: i32, coef: usize, mask: usize,
): void {
  const scaled = anyScaled(coef, c, c0, c1);
  if (mask) {
    if (scaled) dxMixed(dy, x, dx, rows, c, c0, c1, coef, true, mask);
    else dxLines(dy, x, dx, rows, c, c0, c1, coef, true, mask);
  } else if (scaled) dxMixed(dy, x, dx, rows, c, c0, c1, coef, false, 0);
  else dxLines(dy, x, dx, rows, c, c0, c1, coef, false, 0);
}

/**
 * Eval-mode dx = dy * k1 through a fused ReLU for channels [c0, c1) of every row: the normalize
 * kernel on dy with backwardCoefficients' eval-form block `coef`, dy taken as 0 where the forward
 * output from x (forward block `mask`) was <= 0. dx may equal dy. (Without a ReLU the engine runs
 * normalize itself.)
 */
export function backwardDxEvalChannelsLast(
  dy: usize, x: usize, dx: usize, rows: i32, c: i32, c0: i32, c1: i32, coef: usize, mask: usize,
): void {
  normalizeLines(dy, dx, rows, c, c0, c1, coef, false, true, x, mask);
}
