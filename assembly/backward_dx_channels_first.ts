// Training-mode dx = dy * k1 + (x - mh) * k2 + k3 per channel of a channels-first tensor [N, C, S],
// in memory order (coefficients from backwardCoefficients; dx may equal dy), and the scaled form
// dx = k1 * ((dy - c3) - ((x * s - mh * s) - ml * s) * (invstd / s) * c2) for channels at the edge
// of f32's range (see coefficients.ts). Through a fused ReLU, dy is taken as 0 where the forward
// output was <= 0, recomputed from x with the forward block (relu.ts); backwardDxEval is the
// eval-mode dx = dy * k1 through a ReLU.
import { at4 } from "./widen";
import { rowAt, ROW_MH, ROW_A, ROW_B, ROW_K2, ROW_S, ROW_MHS, ROW_MLS, ROW_AS, ROW_C2, ROW_C3 } from "./coefficients";
import { gate1, gate4 } from "./relu";
import { normalizeRange } from "./normalize_channels_first";

/** One row: x at p, dy at g, dx to o; with `gated`, dy gated by x and the forward block constants gs, gm, ga, gb. */
@inline function dxRow(
  p: usize, g: usize, o: usize, bytes: usize, mh: f32, k1: f32, k2: f32, k3: f32, gated: bool, gs: f32, gm: f32, ga: f32, gb: f32,
): void {
  const end = p + bytes;
  let q = p, h = g, r = o;
  if (ASC_FEATURE_SIMD) {
    const mv = f32x4.splat(mh), k1v = f32x4.splat(k1), k2v = f32x4.splat(k2), k3v = f32x4.splat(k3);
    const gsv = f32x4.splat(gs), gmv = f32x4.splat(gm), gav = f32x4.splat(ga), gbv = f32x4.splat(gb);
    for (; q + 32 <= end; q += 32, h += 32, r += 32) {
      const v = v128.load(q), w = v128.load(q, 16);
      const e = gated ? gate4(v128.load(h), v, gsv, gmv, gav, gbv) : v128.load(h);
      const f = gated ? gate4(v128.load(h, 16), w, gsv, gmv, gav, gbv) : v128.load(h, 16);
      const d = f32x4.mul(f32x4.sub(v, mv), k2v);
      const dd = f32x4.mul(f32x4.sub(w, mv), k2v);
      v128.store(r, f32x4.add(f32x4.add(f32x4.mul(e, k1v), k3v), d));
      v128.store(r, f32x4.add(f32x4.add(f32x4.mul(f, k1v), k3v), dd), 16);
    }
    if (q + 16 <= end) {
      const v = v128.load(q);
      const e = gated ? gate4(v128.load(h), v, gsv, gmv, gav, gbv) : v128.load(h);
      const d = f32x4.mul(f32x4.sub(v, mv), k2v);
      v128.store(r, f32x4.add(f32x4.add(f32x4.mul(e, k1v), k3v), d));
      q += 16; h += 16; r += 16;
    }
  }
  for (; q < end; q += 4, h += 4, r += 4) {
    const v = load<f32>(q);
    const e = gated ? gate1(load<f32>(h), v, gs, gm, ga, gb) : load<f32>(h);
    store<f32>(r, (e * k1 + k3) + (v - mh) * k2);
  }
}

/** The scaled form of dxRow (rare). */
@inline function dxRowScaled(
  p: usize, g: usize, o: usize, bytes: usize, k1: f32, s: f32, mhs: f32, mls: f32, rs: f32, c2: f32, c3: f32,
  gated: bool, gs: f32, gm: f32, ga: f32, gb: f32,
): void {
  const end = p + bytes;
  let q = p, h = g, r = o;
  if (ASC_FEATURE_SIMD) {
    const k1v = f32x4.splat(k1), sv = f32x4.splat(s), mv = f32x4.splat(mhs), lv = f32x4.splat(mls);
    const rv = f32x4.splat(rs), c2v = f32x4.splat(c2), c3v = f32x4.splat(c3);
    const gsv = f32x4.splat(gs), gmv = f32x4.splat(gm), gav = f32x4.splat(ga), gbv = f32x4.splat(gb);
    for (; q + 16 <= end; q += 16, h += 16, r += 16) {
      const v = v128.load(q);
      const e = gated ? gate4(v128.load(h), v, gsv, gmv, gav, gbv) : v128.load(h);
      const xhat = f32x4.mul(f32x4.sub(f32x4.sub(f32x4.mul(v, sv), mv), lv), rv);
      v128.store(r, f32x4.mul(f32x4.sub(f32x4.sub(e, c3v), f32x4.mul(xhat, c2v)), k1v));
    }
  }
  for (; q < end; q += 4, h += 4, r += 4) {
    const v = load<f32>(q);
    const e = gated ? gate1(load<f32>(h), v, gs, gm, ga, gb) : load<f32>(h);
    const xhat = ((v * s - mhs) - mls) * rs;
    store<f32>(r, ((e - c3) - xhat * c2) * k1);
  }
}

/** Channels [c0, c1), gated by the forward block `mask` when `gated`. */
@inline function dxRange(
  dy: usize, x: usize, dx: usize, n: i32, c: i32, s: i32, c0: i32, c1: i32, coef: usize, gated: bool, mask: usize,
): void {
  const row = at4(s);
  for (let i = 0; i < n; i++) {
    for (let ch = c0; ch < c1; ch++) {
      const offset = at4(i * c + ch) * <usize>s;
      const scale = load<f32>(rowAt(coef, c, ROW_S, ch));
      const k1 = load<f32>(rowAt(coef, c, ROW_A, ch));
      const gs = gated ? load<f32>(rowAt(mask, c, ROW_S, ch)) : 0;
      const gm = gated ? load<f32>(rowAt(mask, c, ROW_MHS, ch)) : 0;
      const ga = gated ? load<f32>(rowAt(mask, c, ROW_AS, ch)) : 0;
      const gb = gated ? load<f32>(rowAt(mask, c, ROW_B, ch)) : 0;
      if (scale == 1) {
        dxRow(
          x + offset, dy + offset, dx + offset, row, load<f32>(rowAt(coef, c, ROW_MH, ch)), k1,
          load<f32>(rowAt(coef, c, ROW_K2, ch)), load<f32>(rowAt(coef, c, ROW_B, ch)), gated, gs, gm, ga, gb,
        );
      } else {
        dxRowScaled(
          x + offset, dy + offset, dx + offset, row, k1, scale, load<f32>(rowAt(coef, c, ROW_MHS, ch)),
          load<f32>(rowAt(coef, c, ROW_MLS, ch)), load<f32>(rowAt(coef, c, ROW_AS, ch)),
          load<f32>(rowAt(coef, c, ROW_C2, ch)), load<f32>(rowAt(coef, c, ROW_C3, ch)), gated, gs, gm, ga, gb,
        );
      }
    }
  }
}

/**
 * Channels [c0, c1) with the backward coefficient block `coef`. `mask`: the forward block of a fused
 * ReLU (maskCoefficients), or 0 for none.
 */
export function backwardDxChannelsFirst(
  dy: usize, x: usize, dx: usize, n: i32, c: i32, s: i32, c0: i32, c1: i32, coef: usize, mask: usize,
): void {
  if (mask) dxRange(dy, x, dx, n, c, s, c0, c1, coef, true, mask);
  else dxRange(dy, x, dx, n, c, s, c0, c1, coef, false, 0);
}

/**
 * Eval-mode dx = dy * k1 through a fused ReLU for channels [c0, c1): the normalize kernel on dy with
 * backwardCoefficients' eval-form block `coef`, dy taken as 0 where the forward output from x (forward
 * block `mask`) was <= 0. dx may equal dy. (Without a ReLU the engine runs normalize itself.)
 */
export function backwardDxEvalChannelsFirst(
  dy: usize, x: usize, dx: usize, n: i32, c: i32, s: i32, c0: i32, c1: i32, coef: usize, mask: usize,
): void {
  normalizeRange(dy, dx, n, c, s, c0, c1, coef, false, true, x, mask);
}
