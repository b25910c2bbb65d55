// An independent float64 reference for batch normalization (PyTorch's semantics), written as
// plainly as possible: two-pass statistics in float64, no shared code with src/ or assembly/.
// Used by the tests and by the benchmarks to check answers before timing them.

/**
 * Index helpers for a shape in memory order.
 * @param {readonly number[]} shape
 * @param {'channels-first' | 'channels-last'} layout
 */
export function dims(shape, layout = "channels-first") {
  const length = shape.reduce((a, b) => a * b, 1);
  const c = layout === "channels-last" ? shape[shape.length - 1] : shape[1];
  const n = shape[0];
  const inner = layout === "channels-last" ? 1 : shape.slice(2).reduce((a, b) => a * b, 1);
  /** channel of flat index i */
  const channel = layout === "channels-last" ? (i) => i % c : (i) => Math.floor(i / inner) % c;
  return { length, c, n, count: c ? length / c : 0, channel };
}

/**
 * @param {ArrayLike<number>} x
 * @param {{ shape: number[], layout?: string, weight?: ArrayLike<number> | null, bias?: ArrayLike<number> | null,
 *   runningMean?: ArrayLike<number> | null, runningVar?: ArrayLike<number> | null, training?: boolean,
 *   momentum?: number | null, numBatchesTracked?: number, eps?: number, runningVariance?: 'biased' | 'unbiased' }} o
 */
export function referenceForward(x, o) {
  const { length, c, count, channel } = dims(o.shape, o.layout);
  const eps = o.eps ?? 1e-5;
  const training = o.training ?? true;
  const hasRunning = !!(o.runningMean && o.runningVar);
  const batchStats = training || !hasRunning;
  const mean = new Float64Array(c);
  const variance = new Float64Array(c);
  if (batchStats) {
    for (let i = 0; i < length; i++) mean[channel(i)] += x[i];
    for (let k = 0; k < c; k++) mean[k] /= count;
    for (let i = 0; i < length; i++) {
      const d = x[i] - mean[channel(i)];
      variance[channel(i)] += d * d;
    }
    for (let k = 0; k < c; k++) variance[k] /= count;
  } else {
    for (let k = 0; k < c; k++) {
      mean[k] = o.runningMean[k];
      variance[k] = o.runningVar[k];
    }
  }
  const invstd = variance.map((v) => 1 / Math.sqrt(v + eps));
  const y = new Float64Array(length);
  for (let i = 0; i < length; i++) {
    const k = channel(i);
    const g = o.weight ? o.weight[k] : 1;
    const b = o.bias ? o.bias[k] : 0;
    y[i] = (x[i] - mean[k]) * invstd[k] * g + b;
  }
  let runningMean = null;
  let runningVar = null;
  if (training && hasRunning) {
    const momentum = o.momentum === undefined ? 0.1 : o.momentum;
    const f = momentum === null ? 1 / ((o.numBatchesTracked ?? 0) + 1) : momentum;
    runningMean = Float64Array.from(o.runningMean, (r, k) => (1 - f) * r + f * mean[k]);
    const unbias = o.runningVariance === "biased" ? 1 : count / (count - 1);
    runningVar = Float64Array.from(o.runningVar, (r, k) => (1 - f) * r + f * variance[k] * unbias);
  }
  return { y, mean, variance, invstd, runningMean, runningVar };
}

/**
 * Gradients of sum(y * dy). Training: through the batch statistics; eval: running statistics constant.
 * @param {ArrayLike<number>} dy
 * @param {ArrayLike<number>} x
 * @param {{ shape: number[], layout?: string, weight?: ArrayLike<number> | null, training?: boolean,
 *   mean: ArrayLike<number>, invstd: ArrayLike<number> }} o  mean/invstd: what the forward used
 */
export function referenceBackward(dy, x, o) {
  const { length, c, count, channel } = dims(o.shape, o.layout);
  const training = o.training ?? true;
  const dbias = new Float64Array(c);
  const dweight = new Float64Array(c);
  for (let i = 0; i < length; i++) {
    const k = channel(i);
    dbias[k] += dy[i];
    dweight[k] += dy[i] * (x[i] - o.mean[k]) * o.invstd[k];
  }
  const dx = new Float64Array(length);
  for (let i = 0; i < length; i++) {
    const k = channel(i);
    const g = o.weight ? o.weight[k] : 1;
    if (training) {
      const xhat = (x[i] - o.mean[k]) * o.invstd[k];
      dx[i] = g * o.invstd[k] * (dy[i] - dbias[k] / count - (xhat * dweight[k]) / count);
    } else {
      dx[i] = dy[i] * g * o.invstd[k];
    }
  }
  return { dx, dweight, dbias };
}

/** Seeded standard normal values (xorshift + Box-Muller), so every run sees the same data. */
export function randn(length, seed = 1, scale = 1, offset = 0) {
  let s = seed >>> 0 || 1;
  const next = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return (s + 0.5) / 4294967296;
  };
  const out = new Float32Array(length);
  for (let i = 0; i < length; i++) {
    out[i] = offset + scale * Math.sqrt(-2 * Math.log(next())) * Math.cos(2 * Math.PI * next());
  }
  return out;
}

/** max |a - b| over elements (NaN if either has a NaN where the other does not). */
export function maxAbsDiff(a, b) {
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    if (Number.isNaN(a[i]) || Number.isNaN(b[i])) {
      if (Number.isNaN(a[i]) !== Number.isNaN(b[i])) return NaN;
      continue;
    }
    if (a[i] === b[i]) continue;
    m = Math.max(m, Math.abs(a[i] - b[i]));
  }
  return m;
}

/** max |a| over elements. */
export function maxAbs(a) {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}
