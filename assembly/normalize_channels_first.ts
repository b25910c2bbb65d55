// y = (x - mh) * a + b per channel of a channels-first tensor [N, C, S], in memory order
// (forward normalize + affine, and eval-mode backward dx = dy * k1; see coefficients.ts), and the
// scaled form y = (x * s - mh * s) * (a / s) + b for channels at the edge of f32's range; with the
// fused ReLU, y = max(0, y) (relu.ts). The row functions also serve the eval-mode dx through a ReLU
// (backward_dx_channels_first.ts), where each input value is gated by the forward output of the
// same element of x. `relu` and `gated` are compile-time constants at every call site, so each
// variant is a loop of its own and the plain one is what it was without them.
import { at4 } from "./widen";
import { rowAt, ROW_MH, ROW_A, ROW_B, ROW_S, ROW_MHS, ROW_AS } from "./coefficients";
import { relu1, relu4, gate1, gate4 } from "./relu";

/** Four inputs at q, gated by the forward outputs of the four values at t when `gated`. */
@inline function in4(q: usize, t: usize, gated: bool, gs: v128, gm: v128, ga: v128, gb: v128): v128 {
  return gated ? gate4(v128.load(q), v128.load(t), gs, gm, ga, gb) : v128.load(q);
}

/** One input at q, gated as in4. */
@inline function in1(q: usize, t: usize, gated: bool, gs: f32, gm: f32, ga: f32, gb: f32): f32 {
  return gated ? gate1(load<f32>(q), load<f32>(t), gs, gm, ga, gb) : load<f32>(q);
}

@inline function out4(y: v128, relu: bool): v128 {
  return relu ? relu4(y) : y;
}

@inline function out1(y: f32, relu: bool): f32 {
  return relu ? relu1(y) : y;
}

/**
 * Normalizes the row [p, p + bytes) into o; o may equal p. With `gated`, the row at t gates the
 * inputs with the forward block constants gs, gm, ga, gb (its s, mh * s, a / s, b; see relu.ts).
 */
@inline export function normalizeRow(
  p: usize, o: usize, bytes: usize, mh: f32, a: f32, b: f32, relu: bool,
  gated: bool, t: usize, gs: f32, gm: f32, ga: f32, gb: f32,
): void {
  const end = p + bytes;
  let q = p, r = o, u = t;
  if (ASC_FEATURE_SIMD) {
    const mv = f32x4.splat(mh), av = f32x4.splat(a), bv = f32x4.splat(b);
    const sv = f32x4.splat(gs), gmv = f32x4.splat(gm), gav = f32x4.splat(ga), gbv = f32x4.splat(gb);
    for (; q + 64 <= end; q += 64, r += 64, u += 64) {
      v128.store(r, out4(f32x4.add(f32x4.mul(f32x4.sub(in4(q, u, gated, sv, gmv, gav, gbv), mv), av), bv), relu));
      v128.store(r, out4(f32x4.add(f32x4.mul(f32x4.sub(in4(q + 16, u + 16, gated, sv, gmv, gav, gbv), mv), av), bv), relu), 16);
      v128.store(r, out4(f32x4.add(f32x4.mul(f32x4.sub(in4(q + 32, u + 32, gated, sv, gmv, gav, gbv), mv), av), bv), relu), 32);
      v128.store(r, out4(f32x4.add(f32x4.mul(f32x4.sub(in4(q + 48, u + 48, gated, sv, gmv, gav, gbv), mv), av), bv), relu), 48);
    }
    for (; q + 16 <= end; q += 16, r += 16, u += 16) {
      v128.store(r, out4(f32x4.add(f32x4.mul(f32x4.sub(in4(q, u, gated, sv, gmv, gav, gbv), mv), av), bv), relu));
    }
  } else {
    for (; q + 8 <= end; q += 8, r += 8, u += 8) {
      const v = in1(q, u, gated, gs, gm, ga, gb);
      const w = in1(q + 4, u + 4, gated, gs, gm, ga, gb);
      store<f32>(r, out1((v - mh) * a + b, relu));
      store<f32>(r, out1((w - mh) * a + b, relu), 4);
    }
  }
  for (; q < end; q += 4, r += 4, u += 4) store<f32>(r, out1((in1(q, u, gated, gs, gm, ga, gb) - mh) * a + b, relu));
}

/** The scaled form of normalizeRow (rare: channels at the edge of f32's range). */
@inline export function normalizeRowScaled(
  p: usize, o: usize, bytes: usize, s: f32, mhs: f32, as: f32, b: f32, relu: bool,
  gated: bool, t: usize, gs: f32, gm: f32, ga: f32, gb: f32,
): void {
  const end = p + bytes;
  let q = p, r = o, u = t;
  if (ASC_FEATURE_SIMD) {
    const sv = f32x4.splat(s), mv = f32x4.splat(mhs), av = f32x4.splat(as), bv = f32x4.splat(b);
    const gsv = f32x4.splat(gs), gmv = f32x4.splat(gm), gav = f32x4.splat(ga), gbv = f32x4.splat(gb);
    for (; q + 16 <= end; q += 16, r += 16, u += 16) {
      const v = in4(q, u, gated, gsv, gmv, gav, gbv);
      v128.store(r, out4(f32x4.add(f32x4.mul(f32x4.sub(f32x4.mul(v, sv), mv), av), bv), relu));
    }
  }
  for (; q < end; q += 4, r += 4, u += 4) store<f32>(r, out1((in1(q, u, gated, gs, gm, ga, gb) * s - mhs) * as + b, relu));
}

/**
 * Channels [c0, c1) of x into y with the block `coef`, clamped at 0 with `relu`; with `gated`, the
 * inputs are gated by the tensor `gate` (x's geometry) and the forward block `mask` (see relu.ts).
 */
@inline export function normalizeRange(
  x: usize, y: usize, n: i32, c: i32, s: i32, c0: i32, c1: i32, coef: usize, relu: bool, gated: bool, gate: usize, mask: usize,
): void {
  const row = at4(s);
  for (let i = 0; i < n; i++) {
    for (let ch = c0; ch < c1; ch++) {
      const offset = at4(i * c + ch) * <usize>s;
      const scale = load<f32>(rowAt(coef, c, ROW_S, ch));
      const b = load<f32>(rowAt(coef, c, ROW_B, ch));
      const t = gated ? gate + offset : 0;
      const gs = gated ? load<f32>(rowAt(mask, c, ROW_S, ch)) : 0;
      const gm = gated ? load<f32>(rowAt(mask, c, ROW_MHS, ch)) : 0;
      const ga = gated ? load<f32>(rowAt(mask, c, ROW_AS, ch)) : 0;
      const gb = gated ? load<f32>(rowAt(mask, c, ROW_B, ch)) : 0;
      if (scale == 1) {
        normalizeRow(
          x + offset, y + offset, row, load<f32>(rowAt(coef, c, ROW_MH, ch)), load<f32>(rowAt(coef, c, ROW_A, ch)), b, relu,
          gated, t, gs, gm, ga, gb,
        );
      } else {
        normalizeRowScaled(
          x + offset, y + offset, row, scale, load<f32>(rowAt(coef, c, ROW_MHS, ch)), load<f32>(rowAt(coef, c, ROW_AS, ch)), b, relu,
          gated, t, gs, gm, ga, gb,
        );
      }
    }
  }
}

/**
 * Normalizes channels [c0, c1) with the forward coefficient block `coef`; `y` may equal `x`.
 * `relu`: y = max(0, y), the fused ReLU.
 */
export function normalizeChannelsFirst(
  x: usize, y: usize, n: i32, c: i32, s: i32, c0: i32, c1: i32, coef: usize, relu: bool,
): void {
  if (relu) normalizeRange(x, y, n, c, s, c0, c1, coef, true, false, 0, 0);
  else normalizeRange(x, y, n, c, s, c0, c1, coef, false, false, 0, 0);
}
