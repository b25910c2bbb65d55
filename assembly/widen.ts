// Lane helpers shared by the SIMD kernels: widening f32x4 halves to f64x2 and lane sums.
// Only reached from `if (ASC_FEATURE_SIMD)` branches, so the scalar build never compiles them.

/** Lanes 0 and 1 of an f32x4, as f64x2. */
@inline export function lo64(v: v128): v128 {
  return f64x2.promote_low_f32x4(v);
}

/** Lanes 2 and 3 of an f32x4, as f64x2. */
@inline export function hi64(v: v128): v128 {
  return f64x2.promote_low_f32x4(i32x4.shuffle(v, v, 2, 3, 2, 3));
}

/** Sum of both lanes of an f64x2. */
@inline export function sum64(v: v128): f64 {
  return f64x2.extract_lane(v, 0) + f64x2.extract_lane(v, 1);
}

/** Byte offset of element `i` in an array of 4-byte values. */
@inline export function at4(i: i32): usize {
  return <usize>i << 2;
}

/** Byte offset of element `i` in an array of 8-byte values. */
@inline export function at8(i: i32): usize {
  return <usize>i << 3;
}
