// Training forward for channels-first tensors, one channel at a time: statistics, coefficients,
// then normalize while the channel is still in cache, so each channel is read from memory once.
import { at8 } from "./widen";
import { channelStatsFirst } from "./stats_channels_first";
import { channelNormalizeFirst } from "./normalize_channels_first";
import { storeForward, rowAt, ROW_MH, ROW_ML, ROW_A, ROW_B } from "./coefficients";

/**
 * Channels [c0, c1): writes f64 `mean`, `variance` (biased), `invstd`, the forward coefficient
 * block `coef`, and `y` (which may equal `x`).
 */
export function forwardTrainChannelsFirst(
  x: usize, y: usize, n: i32, c: i32, s: i32, c0: i32, c1: i32, eps: f64, weight: usize, bias: usize,
  mean: usize, variance: usize, invstd: usize, coef: usize,
): void {
  for (let ch = c0; ch < c1; ch++) {
    channelStatsFirst(x, n, c, s, ch, mean, variance);
    const r = storeForward(coef, c, ch, load<f64>(mean + at8(ch)), load<f64>(variance + at8(ch)), eps, weight, bias);
    store<f64>(invstd + at8(ch), r);
    channelNormalizeFirst(
      x, y, n, c, s, ch,
      load<f32>(rowAt(coef, c, ROW_MH, ch)), load<f32>(rowAt(coef, c, ROW_ML, ch)),
      load<f32>(rowAt(coef, c, ROW_A, ch)), load<f32>(rowAt(coef, c, ROW_B, ch)),
    );
  }
}
