// Training forward for channels-first tensors, a group of channels at a time: statistics, then
// coefficients, then normalize while the group is still in cache, so x is read from memory once.
// Within a group both passes run in memory order (image by image), which streams far better than
// walking one channel's N scattered rows. With the fused ReLU the normalize pass clamps y at 0.
import { statsChannelsFirst, STATS_FAST } from "./stats_channels_first";
import { normalizeChannelsFirst } from "./normalize_channels_first";
import { forwardCoefficients } from "./coefficients";

/**
 * Channels [c0, c1), `group` channels at a time (the caller sizes groups to its cache): writes f64
 * `mean`, `variance` (biased), `invstd`, the forward coefficient block `coef`, and `y` (may equal `x`);
 * `relu`: y = max(0, y).
 */
export function forwardTrainChannelsFirst(
  x: usize, y: usize, n: i32, c: i32, s: i32, c0: i32, c1: i32, group: i32, eps: f64, weight: usize,
  bias: usize, mean: usize, variance: usize, invstd: usize, coef: usize, relu: bool,
): void {
  for (let g0 = c0; g0 < c1; g0 += group) {
    const g1 = min(c1, g0 + group);
    statsChannelsFirst(x, n, c, s, g0, g1, mean, variance, 0, coef, STATS_FAST); // the mh row holds the shifts until overwritten
    forwardCoefficients(c, g0, g1, mean, variance, false, eps, weight, bias, coef, invstd);
    normalizeChannelsFirst(x, y, n, c, s, g0, g1, coef, relu);
  }
}
