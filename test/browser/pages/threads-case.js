// The calls the threads test makes, shared by the browser page (threads.js) and the Node side of
// the test: deterministic data (a small xorshift, no dependency) on tensors above the split
// threshold, a training forward and backward per case, through the async API (which runs on the
// worker pool wherever there is one).

/** @typedef {import("../../../dist/index.js").Backend} Backend */

/** Cases big enough to be split over threads: channels-first splits by channel, channels-last by rows. */
export const THREAD_CASES = [
  { name: "NCHW 4x32x32x32 (channel split)", shape: [4, 32, 32, 32], layout: "channels-first" },
  { name: "NHWC 8x32x32x16 (row split)", shape: [8, 32, 32, 16], layout: "channels-last" },
  { name: "NC 4096x24 (row split)", shape: [4096, 24], layout: "channels-first" },
];

/** @param {number} length @param {number} seed */
export function data(length, seed) {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(length);
  for (let i = 0; i < length; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = (s / 4294967296) * 4 - 1.5 + (i % 7) * 0.25;
  }
  return out;
}

/**
 * Runs a case with the async API; returns plain arrays.
 * @param {Backend} bn
 * @param {{ shape: number[], layout: "channels-first" | "channels-last" }} c
 */
export async function runThreadCase(bn, c) {
  const length = c.shape.reduce((a, b) => a * b, 1);
  const channels = c.layout === "channels-last" ? c.shape[c.shape.length - 1] : c.shape[1];
  const x = data(length, 7);
  const dy = data(length, 11);
  const weight = data(channels, 13);
  const bias = data(channels, 17);
  const runningMean = new Float32Array(channels);
  const runningVar = new Float32Array(channels).fill(1);
  const options = { shape: c.shape, layout: c.layout, weight, bias, runningMean, runningVar };
  const { y, mean, invstd } = await bn.batchNormAsync(x, options);
  const { dx, dweight, dbias } = await bn.batchNormBackwardAsync(dy, x, { shape: c.shape, layout: c.layout, weight, mean, invstd });
  const out = { y, mean, invstd, runningMean, runningVar, dx, dweight, dbias };
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, Array.from(v)]));
}
