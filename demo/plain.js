// What the demo races the library against: batch normalization as the plain JavaScript loop one
// would write by hand (two-pass float64 statistics, then y = x * scale + shift), plus the seeded
// input both sides get.

/**
 * @typedef {"channels-first" | "channels-last"} Layout
 * @typedef {{ c: number, length: number, count: number, outer: number, inner: number }} Geometry
 */

/**
 * Both layouts are loops over (outer, channel, inner) with element (o, k, j) at (o * c + k) * inner + j:
 * channels-first [N, C, ...spatial] has outer = N, inner = spatial size; channels-last has inner = 1.
 * @param {number[]} shape in memory order
 * @param {Layout} layout
 * @returns {Geometry}
 */
export function geometry(shape, layout) {
  const length = shape.reduce((a, b) => a * b, 1);
  const c = layout === "channels-last" ? shape[shape.length - 1] : shape[1];
  const inner = layout === "channels-last" ? 1 : length / (shape[0] * c);
  return { c, length, count: length / c, outer: length / (c * inner), inner };
}

/**
 * Seeded normal data, channel k drawn from N(mu[k], sigma[k]^2); channel 0 is the one plotted.
 * @param {Geometry} g
 */
export function randomInput(g, seed = 1) {
  let s = seed;
  const uniform = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return ((s >>> 0) + 0.5) / 2 ** 32;
  };
  const mu = Float32Array.from({ length: g.c }, (_, k) => (k === 0 ? 3 : 8 * uniform() - 4));
  const sigma = Float32Array.from({ length: g.c }, (_, k) => (k === 0 ? 2 : 0.5 + 2.5 * uniform()));
  const x = new Float32Array(g.length);
  for (let o = 0, i = 0; o < g.outer; o++) {
    for (let k = 0; k < g.c; k++) {
      for (let j = 0; j < g.inner; j++, i++) {
        const z = Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
        x[i] = mu[k] + sigma[k] * z;
      }
    }
  }
  return { x, mu, sigma };
}

/**
 * @typedef {object} Params
 * @property {Float32Array} weight
 * @property {Float32Array} bias
 * @property {Float32Array} runningMean updated in place when training
 * @property {Float32Array} runningVar updated in place when training
 * @property {boolean} training
 * @property {number} momentum
 * @property {number} eps
 */

/**
 * PyTorch's batch norm, written plainly: writes y, updates the running statistics when training.
 * Each pass has a loop nest per memory order, so that the innermost loop is always the long one
 * (one generic nest costs the channels-last case about 1.5x): a fair baseline, not a straw man.
 * @param {Float32Array} x
 * @param {Float32Array} y
 * @param {Geometry} g
 * @param {Params} p
 */
export function plainBatchNorm(x, y, g, p) {
  const { c, outer, inner, count, length } = g;
  const mean = new Float64Array(c);
  const variance = new Float64Array(c);
  if (p.training) {
    if (inner === 1) {
      for (let i = 0; i < length; ) for (let k = 0; k < c; k++) mean[k] += x[i++];
    } else {
      for (let o = 0, i = 0; o < outer; o++) {
        for (let k = 0; k < c; k++) {
          let sum = 0;
          for (let j = 0; j < inner; j++) sum += x[i++];
          mean[k] += sum;
        }
      }
    }
    for (let k = 0; k < c; k++) mean[k] /= count;
    if (inner === 1) {
      for (let i = 0; i < length; ) {
        for (let k = 0; k < c; k++, i++) variance[k] += (x[i] - mean[k]) * (x[i] - mean[k]);
      }
    } else {
      for (let o = 0, i = 0; o < outer; o++) {
        for (let k = 0; k < c; k++) {
          const m = mean[k];
          let sum = 0;
          for (let j = 0; j < inner; j++, i++) sum += (x[i] - m) * (x[i] - m);
          variance[k] += sum;
        }
      }
    }
    for (let k = 0; k < c; k++) {
      variance[k] /= count;
      p.runningMean[k] = (1 - p.momentum) * p.runningMean[k] + p.momentum * mean[k];
      p.runningVar[k] = (1 - p.momentum) * p.runningVar[k] + (p.momentum * variance[k] * count) / (count - 1);
    }
  } else {
    mean.set(p.runningMean);
    variance.set(p.runningVar);
  }
  const scale = new Float64Array(c);
  const shift = new Float64Array(c);
  for (let k = 0; k < c; k++) {
    scale[k] = p.weight[k] / Math.sqrt(variance[k] + p.eps);
    shift[k] = p.bias[k] - mean[k] * scale[k];
  }
  if (inner === 1) {
    for (let i = 0; i < length; ) for (let k = 0; k < c; k++, i++) y[i] = x[i] * scale[k] + shift[k];
  } else {
    for (let o = 0, i = 0; o < outer; o++) {
      for (let k = 0; k < c; k++) {
        const a = scale[k];
        const b = shift[k];
        for (let j = 0; j < inner; j++, i++) y[i] = x[i] * a + b;
      }
    }
  }
}

/**
 * The values of channel `k`.
 * @param {Float32Array} data
 * @param {Geometry} g
 * @param {number} k
 */
export function channel(data, g, k) {
  const out = new Float32Array(g.count);
  for (let o = 0, i = 0; o < g.outer; o++) {
    const base = (o * g.c + k) * g.inner;
    for (let j = 0; j < g.inner; j++) out[i++] = data[base + j];
  }
  return out;
}

/**
 * Mean and (biased) variance, two-pass.
 * @param {ArrayLike<number>} v
 */
export function moments(v) {
  let sum = 0;
  for (let i = 0; i < v.length; i++) sum += v[i];
  const mean = sum / v.length;
  let sq = 0;
  for (let i = 0; i < v.length; i++) sq += (v[i] - mean) ** 2;
  return { mean, variance: sq / v.length };
}

/**
 * max |a - b| over elements.
 * @param {ArrayLike<number>} a
 * @param {ArrayLike<number>} b
 */
export function maxAbsDiff(a, b) {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
