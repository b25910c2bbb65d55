// Two pure-JavaScript batch normalizations to measure the library against, with the same
// semantics as the library and PyTorch (biased batch variance for normalizing, unbiased for the
// running variance, running = (1 - momentum) * running + momentum * batch):
//
//   naive  the code most people would write first: for each channel, one loop for the mean, one for
//          the variance, one for y with the subtraction, division and square root inline, walking
//          the channel with strides (which is cache-hostile for channels-last data).
//   tuned  what a careful JS programmer writes: the statistics in one pass over memory in memory
//          order (shifted sums, so the one-pass variance stays accurate), then per-channel
//          scale/shift so y = x * scale + shift, in tight typed-array loops.
//
// Both take the library's option names. Outputs go to `out` when given (the benchmark passes a
// preallocated Float32Array, so neither allocates tensor-sized memory per call).

/**
 * @typedef {'channels-first' | 'channels-last'} Layout
 *
 * @typedef {object} ForwardOptions
 * @property {readonly number[]} shape  memory order: [N, C, ...spatial] or, channels-last, [N, ...spatial, C]
 * @property {Layout} [layout]          default 'channels-first'
 * @property {ArrayLike<number> | null} [weight]  per-channel scale (gamma), default 1
 * @property {ArrayLike<number> | null} [bias]    per-channel shift (beta), default 0
 * @property {Float32Array | null} [runningMean]  updated in place when training
 * @property {Float32Array | null} [runningVar]   updated in place when training
 * @property {boolean} [training]       batch statistics (true, default) or running ones (false)
 * @property {number} [momentum]        default 0.1
 * @property {number} [eps]             default 1e-5
 * @property {Float32Array | null} [out] destination for y
 *
 * @typedef {object} ForwardResult
 * @property {Float32Array} y
 * @property {Float64Array} mean    per channel, what y was normalized with
 * @property {Float64Array} invstd  per channel, 1 / sqrt(var + eps)
 *
 * @typedef {object} BackwardOptions
 * @property {readonly number[]} shape
 * @property {Layout} [layout]
 * @property {ArrayLike<number> | null} [weight]
 * @property {boolean} [training]       gradient through the batch statistics (default true)
 * @property {ArrayLike<number>} [mean]    training: the forward's batch mean
 * @property {ArrayLike<number>} [invstd]  training: the forward's 1 / sqrt(var + eps)
 * @property {ArrayLike<number>} [runningMean] eval: the running statistics the forward used
 * @property {ArrayLike<number>} [runningVar]
 * @property {number} [eps]
 * @property {Float32Array | null} [out] destination for dx
 *
 * @typedef {object} BackwardResult
 * @property {Float32Array} dx
 * @property {Float64Array} dweight
 * @property {Float64Array} dbias
 */

/**
 * Sizes of a shape: n images, c channels, s positions per image and channel, count = n * s values
 * per channel, and whether memory is rows of C values ([count, C]: channels-last, or channels-first
 * without spatial dimensions).
 * @param {readonly number[]} shape
 * @param {Layout} layout
 */
function sizes(shape, layout) {
  let length = 1;
  for (const d of shape) length *= d;
  const n = shape[0];
  const c = layout === "channels-last" ? shape[shape.length - 1] : shape[1];
  const s = length / (n * c);
  return { length, n, c, s, count: n * s, rows: layout === "channels-last" || s === 1 };
}

/** The statistics the forward normalizes with, as float64 mean and invstd. */
function runningStatistics(runningMean, runningVar, eps) {
  const mean = Float64Array.from(runningMean);
  const invstd = Float64Array.from(runningVar, (v) => 1 / Math.sqrt(v + eps));
  return { mean, invstd };
}

/** running = (1 - momentum) * running + momentum * batch, with the unbiased batch variance. */
function updateRunning(o, mean, variance, count) {
  if (!o.runningMean || !o.runningVar) return;
  const m = o.momentum ?? 0.1;
  const unbias = count / (count - 1);
  for (let k = 0; k < mean.length; k++) {
    o.runningMean[k] = (1 - m) * o.runningMean[k] + m * mean[k];
    o.runningVar[k] = (1 - m) * o.runningVar[k] + m * variance[k] * unbias;
  }
}

// ---------------------------------------------------------------------------------------------
// naive

/**
 * Batch normalization forward, written the obvious way: channel by channel, three loops each.
 * @param {Float32Array} x
 * @param {ForwardOptions} o
 * @returns {ForwardResult}
 */
function naiveBatchNorm(x, o) {
  const { n, c, s, count } = sizes(o.shape, o.layout ?? "channels-first");
  const eps = o.eps ?? 1e-5;
  const batchStats = (o.training ?? true) || !o.runningMean;
  const y = o.out ?? new Float32Array(x.length);
  // x[image, channel, position] is at image * imageStride + channel * channelStride + position * positionStride
  const channelsLast = o.layout === "channels-last";
  const imageStride = c * s;
  const channelStride = channelsLast ? 1 : s;
  const positionStride = channelsLast ? c : 1;
  const means = new Float64Array(c);
  const variances = new Float64Array(c);
  const invstds = new Float64Array(c);

  for (let ch = 0; ch < c; ch++) {
    let mean;
    let variance;
    if (batchStats) {
      let sum = 0;
      for (let img = 0; img < n; img++) {
        for (let p = 0; p < s; p++) sum += x[img * imageStride + ch * channelStride + p * positionStride];
      }
      mean = sum / count;
      let squares = 0;
      for (let img = 0; img < n; img++) {
        for (let p = 0; p < s; p++) {
          const d = x[img * imageStride + ch * channelStride + p * positionStride] - mean;
          squares += d * d;
        }
      }
      variance = squares / count;
    } else {
      mean = o.runningMean[ch];
      variance = o.runningVar[ch];
    }
    const gamma = o.weight ? o.weight[ch] : 1;
    const beta = o.bias ? o.bias[ch] : 0;
    for (let img = 0; img < n; img++) {
      for (let p = 0; p < s; p++) {
        const i = img * imageStride + ch * channelStride + p * positionStride;
        y[i] = ((x[i] - mean) / Math.sqrt(variance + eps)) * gamma + beta;
      }
    }
    means[ch] = mean;
    variances[ch] = variance;
    invstds[ch] = 1 / Math.sqrt(variance + eps);
  }
  if (batchStats && (o.training ?? true)) updateRunning(o, means, variances, count);
  return { y, mean: means, invstd: invstds };
}

/**
 * Gradients of sum(y * dy) for x, weight and bias, written the obvious way.
 * Training: dx = gamma * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)) per channel.
 * @param {Float32Array} dy
 * @param {Float32Array} x
 * @param {BackwardOptions} o
 * @returns {BackwardResult}
 */
function naiveBatchNormBackward(dy, x, o) {
  const { n, c, s, count } = sizes(o.shape, o.layout ?? "channels-first");
  const training = o.training ?? true;
  const stats = training ? { mean: o.mean, invstd: o.invstd } : runningStatistics(o.runningMean, o.runningVar, o.eps ?? 1e-5);
  const dx = o.out ?? new Float32Array(x.length);
  const channelsLast = o.layout === "channels-last";
  const imageStride = c * s;
  const channelStride = channelsLast ? 1 : s;
  const positionStride = channelsLast ? c : 1;
  const dweight = new Float64Array(c);
  const dbias = new Float64Array(c);

  for (let ch = 0; ch < c; ch++) {
    const mean = stats.mean[ch];
    const invstd = stats.invstd[ch];
    let sumDy = 0;
    let sumDyXhat = 0;
    for (let img = 0; img < n; img++) {
      for (let p = 0; p < s; p++) {
        const i = img * imageStride + ch * channelStride + p * positionStride;
        sumDy += dy[i];
        sumDyXhat += dy[i] * (x[i] - mean) * invstd;
      }
    }
    const gamma = o.weight ? o.weight[ch] : 1;
    for (let img = 0; img < n; img++) {
      for (let p = 0; p < s; p++) {
        const i = img * imageStride + ch * channelStride + p * positionStride;
        if (training) {
          const xhat = (x[i] - mean) * invstd;
          dx[i] = gamma * invstd * (dy[i] - sumDy / count - (xhat * sumDyXhat) / count);
        } else {
          dx[i] = dy[i] * gamma * invstd;
        }
      }
    }
    dweight[ch] = sumDyXhat;
    dbias[ch] = sumDy;
  }
  return { dx, dweight, dbias };
}

/** The straightforward implementation. */
export const naive = { batchNorm: naiveBatchNorm, batchNormBackward: naiveBatchNormBackward };

/** A separate ReLU pass in plain JS, in place: y = max(0, y), a NaN staying NaN as in torch.relu. */
export function reluInPlace(y) {
  for (let i = 0; i < y.length; i++) if (y[i] < 0) y[i] = 0;
}

/** ReLU's backward in plain JS: out = dy where the forward's output y is > 0 (or NaN), else 0. */
export function reluMask(dy, y, out) {
  for (let i = 0; i < y.length; i++) out[i] = y[i] <= 0 ? 0 : dy[i];
}

// ---------------------------------------------------------------------------------------------
// tuned

/** Values per block when reducing rows of C channel by channel (8192 floats: 32 KiB, about L1). */
const BLOCK_VALUES = 8192;

/**
 * Per-channel mean and biased variance in one pass over memory, in memory order. Sums are of
 * x - shift, where shift is the channel's first value: with the shift near the mean,
 * sum(d^2) - sum(d)^2 / count does not cancel catastrophically even when |mean| >> std.
 * @returns {{ mean: Float64Array, variance: Float64Array }}
 */
function tunedStatistics(x, g) {
  const { n, c, s, count, rows } = g;
  const mean = new Float64Array(c);
  const variance = new Float64Array(c);
  if (rows) {
    // Memory is [count, C]. Walk it in blocks of rows small enough to stay in L1, and within a
    // block channel by channel, so each channel's sums live in registers, not in arrays.
    const shift = Float64Array.from(x.subarray(0, c));
    const sum = new Float64Array(c);
    const squares = new Float64Array(c);
    const blockRows = Math.max(1, Math.floor(BLOCK_VALUES / c));
    for (let r0 = 0; r0 < count; r0 += blockRows) {
      const end = Math.min(count, r0 + blockRows) * c;
      for (let k = 0; k < c; k++) {
        const sh = shift[k];
        let s1 = 0;
        let s2 = 0;
        for (let i = r0 * c + k; i < end; i += c) {
          const d = x[i] - sh;
          s1 += d;
          s2 += d * d;
        }
        sum[k] += s1;
        squares[k] += s2;
      }
    }
    for (let k = 0; k < c; k++) {
      mean[k] = shift[k] + sum[k] / count;
      variance[k] = Math.max(0, (squares[k] - (sum[k] * sum[k]) / count) / count);
    }
  } else {
    // Memory is [N, C, S]: each (image, channel) plane is contiguous. Two accumulators per sum
    // halve the loop-carried dependency chain.
    for (let k = 0; k < c; k++) {
      const shift = x[k * s];
      let sum0 = 0;
      let sum1 = 0;
      let sq0 = 0;
      let sq1 = 0;
      for (let img = 0; img < n; img++) {
        const start = (img * c + k) * s;
        const end = start + s;
        let i = start;
        for (; i + 1 < end; i += 2) {
          const d0 = x[i] - shift;
          const d1 = x[i + 1] - shift;
          sum0 += d0;
          sum1 += d1;
          sq0 += d0 * d0;
          sq1 += d1 * d1;
        }
        if (i < end) {
          const d = x[i] - shift;
          sum0 += d;
          sq0 += d * d;
        }
      }
      const sum = sum0 + sum1;
      mean[k] = shift + sum / count;
      variance[k] = Math.max(0, (sq0 + sq1 - (sum * sum) / count) / count);
    }
  }
  return { mean, variance };
}

/**
 * y = x * scale[channel] + shift[channel] (also dx = dy * scale in eval backward).
 * @param {Float32Array} x
 * @param {Float32Array} y
 * @param {Float64Array} scale
 * @param {Float64Array} shift
 */
function scaleShift(x, y, scale, shift, g) {
  const { n, c, s, count, rows } = g;
  if (rows) {
    for (let base = 0; base < count * c; base += c) {
      for (let k = 0; k < c; k++) y[base + k] = x[base + k] * scale[k] + shift[k];
    }
  } else {
    for (let img = 0; img < n; img++) {
      for (let k = 0; k < c; k++) {
        const a = scale[k];
        const b = shift[k];
        const start = (img * c + k) * s;
        const end = start + s;
        for (let i = start; i < end; i++) y[i] = x[i] * a + b;
      }
    }
  }
}

/**
 * Batch normalization forward: one pass for the statistics (training), one for y = x * scale + shift.
 * @param {Float32Array} x
 * @param {ForwardOptions} o
 * @returns {ForwardResult}
 */
function tunedBatchNorm(x, o) {
  const g = sizes(o.shape, o.layout ?? "channels-first");
  const eps = o.eps ?? 1e-5;
  const training = o.training ?? true;
  const batchStats = training || !o.runningMean;
  const y = o.out ?? new Float32Array(x.length);
  const { mean, variance } = batchStats
    ? tunedStatistics(x, g)
    : { mean: Float64Array.from(o.runningMean), variance: Float64Array.from(o.runningVar) };
  const invstd = new Float64Array(g.c);
  const scale = new Float64Array(g.c);
  const shift = new Float64Array(g.c);
  for (let k = 0; k < g.c; k++) {
    invstd[k] = 1 / Math.sqrt(variance[k] + eps);
    scale[k] = (o.weight ? o.weight[k] : 1) * invstd[k];
    shift[k] = (o.bias ? o.bias[k] : 0) - mean[k] * scale[k];
  }
  scaleShift(x, y, scale, shift, g);
  if (batchStats && training) updateRunning(o, mean, variance, g.count);
  return { y, mean, invstd };
}

/**
 * Gradients of sum(y * dy). One pass reduces sum(dy) and sum(dy * (x - mean)) per channel; then,
 * per channel, dx = a * dy + b * x + d is a second pass with three coefficients:
 *   a = gamma * invstd,  b = -a * invstd^2 * sum(dy * (x - mean)) / count,
 *   d = -a * sum(dy) / count - b * mean.
 * @param {Float32Array} dy
 * @param {Float32Array} x
 * @param {BackwardOptions} o
 * @returns {BackwardResult}
 */
function tunedBatchNormBackward(dy, x, o) {
  const g = sizes(o.shape, o.layout ?? "channels-first");
  const { n, c, s, count, rows } = g;
  const training = o.training ?? true;
  const stats = training ? { mean: o.mean, invstd: o.invstd } : runningStatistics(o.runningMean, o.runningVar, o.eps ?? 1e-5);
  const dx = o.out ?? new Float32Array(x.length);
  const mean = Float64Array.from(stats.mean);
  const invstd = Float64Array.from(stats.invstd);
  const sumDy = new Float64Array(c);
  const sumDyXc = new Float64Array(c);

  if (rows) {
    // Blocks of rows, channel by channel within a block, as in tunedStatistics.
    const blockRows = Math.max(1, Math.floor(BLOCK_VALUES / c));
    for (let r0 = 0; r0 < count; r0 += blockRows) {
      const end = Math.min(count, r0 + blockRows) * c;
      for (let k = 0; k < c; k++) {
        const m = mean[k];
        let s0 = 0;
        let s1 = 0;
        for (let i = r0 * c + k; i < end; i += c) {
          const d = dy[i];
          s0 += d;
          s1 += d * (x[i] - m);
        }
        sumDy[k] += s0;
        sumDyXc[k] += s1;
      }
    }
  } else {
    // Planes are contiguous; two accumulators per sum, as in tunedStatistics.
    for (let k = 0; k < c; k++) {
      const m = mean[k];
      let dy0 = 0;
      let dy1 = 0;
      let dyx0 = 0;
      let dyx1 = 0;
      for (let img = 0; img < n; img++) {
        const start = (img * c + k) * s;
        const end = start + s;
        let i = start;
        for (; i + 1 < end; i += 2) {
          const d0 = dy[i];
          const d1 = dy[i + 1];
          dy0 += d0;
          dy1 += d1;
          dyx0 += d0 * (x[i] - m);
          dyx1 += d1 * (x[i + 1] - m);
        }
        if (i < end) {
          dy0 += dy[i];
          dyx0 += dy[i] * (x[i] - m);
        }
      }
      sumDy[k] = dy0 + dy1;
      sumDyXc[k] = dyx0 + dyx1;
    }
  }

  const dweight = new Float64Array(c);
  const a = new Float64Array(c);
  const b = new Float64Array(c);
  const d = new Float64Array(c);
  for (let k = 0; k < c; k++) {
    const gamma = o.weight ? o.weight[k] : 1;
    dweight[k] = sumDyXc[k] * invstd[k];
    a[k] = gamma * invstd[k];
    if (training) {
      b[k] = (-a[k] * invstd[k] * invstd[k] * sumDyXc[k]) / count;
      d[k] = (-a[k] * sumDy[k]) / count - b[k] * mean[k];
    }
  }

  if (!training) {
    scaleShift(dy, dx, a, d, g); // d is all zeros: dx = dy * gamma * invstd
  } else if (rows) {
    for (let base = 0; base < count * c; base += c) {
      for (let k = 0; k < c; k++) dx[base + k] = a[k] * dy[base + k] + b[k] * x[base + k] + d[k];
    }
  } else {
    for (let img = 0; img < n; img++) {
      for (let k = 0; k < c; k++) {
        const ak = a[k];
        const bk = b[k];
        const dk = d[k];
        const start = (img * c + k) * s;
        const end = start + s;
        for (let i = start; i < end; i++) dx[i] = ak * dy[i] + bk * x[i] + dk;
      }
    }
  }
  return { dx, dweight, dbias: sumDy };
}

/** The tuned implementation. */
export const tuned = { batchNorm: tunedBatchNorm, batchNormBackward: tunedBatchNormBackward };
