// The fused ReLU of y = max(0, BN(x)) (torch.relu after batch_norm), shared by the kernels.
// Forward: y < 0 ? 0 : y, which keeps a NaN a NaN, as torch.relu does (and -0 as -0: the sign of a
// zero output is free). In SIMD that is f32x4.pmax(y, 0), one maxps on x86, where f32x4.max's
// IEEE NaN and zero rules take V8 several instructions (measured 1.3-1.5x plain BN on S3 and S4).
// Backward: dy taken as 0 where the forward's output was <= 0 (torch's threshold_backward: the
// gradient is 0 at exactly 0, and a NaN output passes its gradient). The output is recomputed from
// x with the forward's coefficient block, always in the scaled form (x * s - mh * s) * (a / s) + b:
// for an unscaled channel s = 1, mh * s = mh and a / s = a, and x * 1 = x exactly, so it gives the
// bits of the plain form (x - mh) * a + b the forward wrote. No mask is stored.
import { rowAt, ROW_S, ROW_MHS, ROW_AS, ROW_B } from "./coefficients";

/** y < 0 ? 0 : y per lane (pmax(a, b) = a < b ? b : a). */
@inline export function relu4(y: v128): v128 {
  return f32x4.pmax(y, f32x4.splat(0));
}

/** y < 0 ? 0 : y. */
@inline export function relu1(y: f32): f32 {
  return select<f32>(0, y, y < 0);
}

/** dy, with 0 in the lanes where the forward output (x * s - mhs) * as + b is <= 0. */
@inline export function gate4(dy: v128, x: v128, s: v128, mhs: v128, as: v128, b: v128): v128 {
  const y = f32x4.add(f32x4.mul(f32x4.sub(f32x4.mul(x, s), mhs), as), b);
  return v128.andnot(dy, f32x4.le(y, f32x4.splat(0)));
}

/** dy, or 0 where the forward output (x * s - mhs) * as + b is <= 0. */
@inline export function gate1(dy: f32, x: f32, s: f32, mhs: f32, as: f32, b: f32): f32 {
  return (x * s - mhs) * as + b <= 0 ? 0 : dy;
}

/** gate1 for channel `ch` of the forward block `mask` (rows of `c` channels). */
@inline export function gateAt(dy: f32, x: f32, mask: usize, c: i32, ch: i32): f32 {
  return gate1(
    dy, x, load<f32>(rowAt(mask, c, ROW_S, ch)), load<f32>(rowAt(mask, c, ROW_MHS, ch)), load<f32>(rowAt(mask, c, ROW_AS, ch)),
    load<f32>(rowAt(mask, c, ROW_B, ch)),
  );
}
