// The training code of the MNIST example, shared by the Node experiments (run.mjs), the test
// (test/mnist-training.test.ts) and the demo page: a small multilayer perceptron in plain
// JavaScript, with BN layers from wasm-batchnorm's module API. No `node:` imports: it runs in
// browsers and workers too, and the library's backend is passed in (`bn`, from `init()`).
//
// The network is Ioffe & Szegedy's (2015, section 4.1, https://arxiv.org/abs/1502.03167):
// 784-100-100-100-10, sigmoid (or ReLU) after each hidden Linear, optionally BN between the Linear
// and the activation (the Linear's bias is dropped there: BN's own bias replaces it), softmax
// cross-entropy, plain SGD on mini-batches of 60. Tensors are Float32Arrays, rows of [N, features],
// which is also the [N, C] shape the BN module takes.

/**
 * mulberry32: a small seeded PRNG (32-bit state); returns uniform numbers in [0, 1).
 * @param {number} seed any 32-bit integer
 */
export function prng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A standard normal sample (Box-Muller) from a uniform source.
 * @param {() => number} rand
 */
function gaussian(rand) {
  return Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}

/**
 * Fisher-Yates shuffle in place.
 * @template T
 * @param {T[] | Uint32Array} a
 * @param {() => number} rand
 */
export function shuffle(a, rand) {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const t = a[i];
    a[i] = a[j];
    a[j] = t;
  }
  return a;
}

/**
 * c[m, n] = a[m, k] · b[n, k]ᵀ (row-major), summed in float64 in order of k (so both paths below
 * give the same result for finite values). Mostly-zero `a` (MNIST pixels are about 80% zeros) goes
 * row by row over each row's non-zeros; dense `a` (sigmoid outputs) two rows at a time, which
 * loads each value of `b` once for both.
 * @param {Float32Array} a
 * @param {number} m
 * @param {number} k
 * @param {Float32Array} b
 * @param {number} n
 * @param {Float32Array} [c]
 * @returns {Float32Array}
 */
export function matmulABt(a, m, k, b, n, c = new Float32Array(m * n)) {
  let zeros = 0;
  for (let i = 0; i < m * k; i++) if (a[i] === 0) zeros++;
  return zeros * 2 > m * k ? sparseRows(a, m, k, b, n, c) : denseRows(a, m, k, b, n, c);
}

/** Scratch for sparseRows' list of a row's non-zero entries (grown on demand). */
let nzIndex = new Int32Array(1024);
let nzValue = new Float64Array(1024);

/** matmulABt over each row's non-zeros, four outputs per pass. @type {typeof matmulABt} */
function sparseRows(a, m, k, b, n, c = new Float32Array(m * n)) {
  if (k > nzIndex.length) (nzIndex = new Int32Array(k)), (nzValue = new Float64Array(k));
  const idx = nzIndex;
  const val = nzValue;
  for (let r = 0; r < m; r++) {
    let nz = 0;
    for (let j = 0, ar = r * k; j < k; j++) {
      const v = a[ar + j];
      if (v !== 0) (idx[nz] = j), (val[nz++] = v);
    }
    const cr = r * n;
    let o = 0;
    for (; o + 4 <= n; o += 4) {
      const b0 = o * k, b1 = b0 + k, b2 = b1 + k, b3 = b2 + k;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (let j = 0; j < nz; j++) {
        const i = idx[j], v = val[j];
        s0 += v * b[b0 + i];
        s1 += v * b[b1 + i];
        s2 += v * b[b2 + i];
        s3 += v * b[b3 + i];
      }
      c[cr + o] = s0;
      c[cr + o + 1] = s1;
      c[cr + o + 2] = s2;
      c[cr + o + 3] = s3;
    }
    for (; o < n; o++) {
      let s = 0;
      for (let j = 0, bo = o * k; j < nz; j++) s += val[j] * b[bo + idx[j]];
      c[cr + o] = s;
    }
  }
  return c;
}

/** matmulABt two rows by four outputs at a time; the leftover row and outputs one by one. @type {typeof matmulABt} */
function denseRows(a, m, k, b, n, c = new Float32Array(m * n)) {
  const pairs = m & ~1;
  const quads = n & ~3;
  for (let r = 0; r < pairs; r += 2) {
    const a0 = r * k, a1 = a0 + k, c0 = r * n, c1 = c0 + n;
    for (let o = 0; o < quads; o += 4) {
      const b0 = o * k, b1 = b0 + k, b2 = b1 + k, b3 = b2 + k;
      let s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
      for (let j = 0; j < k; j++) {
        const u = a[a0 + j], v = a[a1 + j];
        const w0 = b[b0 + j], w1 = b[b1 + j], w2 = b[b2 + j], w3 = b[b3 + j];
        s00 += u * w0;
        s01 += u * w1;
        s02 += u * w2;
        s03 += u * w3;
        s10 += v * w0;
        s11 += v * w1;
        s12 += v * w2;
        s13 += v * w3;
      }
      c[c0 + o] = s00;
      c[c0 + o + 1] = s01;
      c[c0 + o + 2] = s02;
      c[c0 + o + 3] = s03;
      c[c1 + o] = s10;
      c[c1 + o + 1] = s11;
      c[c1 + o + 2] = s12;
      c[c1 + o + 3] = s13;
    }
  }
  for (let r = 0; r < m; r++) {
    for (let o = r < pairs ? quads : 0; o < n; o++) {
      let s = 0;
      for (let j = 0, ar = r * k, bo = o * k; j < k; j++) s += a[ar + j] * b[bo + j];
      c[r * n + o] = s;
    }
  }
  return c;
}

/**
 * The transpose of a row-major [rows, cols] matrix.
 * @param {Float32Array} a
 * @param {number} rows
 * @param {number} cols
 * @param {Float32Array} [out]
 */
export function transpose(a, rows, cols, out = new Float32Array(rows * cols)) {
  for (let r = 0; r < rows; r++) for (let j = 0; j < cols; j++) out[j * rows + r] = a[r * cols + j];
  return out;
}

/** A fully connected layer, y = x Wᵀ + b, with W stored [out, in] as in torch.nn.Linear. */
export class Linear {
  kind = "linear";

  /**
   * @param {number} inputs
   * @param {number} outputs
   * @param {{ bias: boolean, rand: () => number, scale: number }} o weights ~ N(0, scale^2 / inputs); bias 0
   */
  constructor(inputs, outputs, { bias, rand, scale }) {
    this.inputs = inputs;
    this.outputs = outputs;
    this.weight = new Float32Array(inputs * outputs);
    const std = scale / Math.sqrt(inputs);
    for (let i = 0; i < this.weight.length; i++) this.weight[i] = gaussian(rand) * std;
    this.bias = bias ? new Float32Array(outputs) : null;
    this.weightGrad = new Float32Array(inputs * outputs);
    this.biasGrad = bias ? new Float32Array(outputs) : null;
    /** @type {Float32Array | null} */
    this.x = null;
    this.n = 0;
  }

  /**
   * @param {Float32Array} x [n, inputs]
   * @param {number} n
   */
  forward(x, n) {
    const { inputs: I, outputs: O, bias: b } = this;
    const y = matmulABt(x, n, I, this.weight, O);
    if (b) for (let r = 0; r < n; r++) for (let o = 0; o < O; o++) y[r * O + o] += b[o];
    this.x = x;
    this.n = n;
    return y;
  }

  /**
   * Sets weightGrad/biasGrad for the last forward; returns dx unless `needDx` is false (first layer).
   * @param {Float32Array} dy [n, outputs]
   * @param {boolean} needDx
   */
  backward(dy, needDx = true) {
    const { inputs: I, outputs: O, x, n } = this;
    if (!x) throw new Error("Linear.backward: call forward first");
    // dWᵀ = xᵀ · dy, as xᵀ's rows (one per input, mostly zero for pixels) times dyᵀ's rows
    const gwT = matmulABt(transpose(x, n, I), I, n, transpose(dy, n, O), O);
    transpose(gwT, I, O, this.weightGrad);
    if (this.biasGrad) {
      const gb = this.biasGrad.fill(0);
      for (let r = 0; r < n; r++) for (let o = 0; o < O; o++) gb[o] += dy[r * O + o];
    }
    return needDx ? matmulABt(dy, n, O, transpose(this.weight, O, I), I) : null;
  }

  /** @param {number} lr */
  step(lr) {
    sgd(this.weight, this.weightGrad, lr);
    if (this.bias && this.biasGrad) sgd(this.bias, this.biasGrad, lr);
  }
}

/**
 * p -= lr * g
 * @param {Float32Array} p
 * @param {Float32Array} g
 * @param {number} lr
 */
function sgd(p, g, lr) {
  for (let i = 0; i < p.length; i++) p[i] -= lr * g[i];
}

/** Elementwise 1 / (1 + exp(-x)); backward from the saved output. */
export class Sigmoid {
  kind = "activation";
  /** @type {Float32Array | null} */
  y = null;

  /** @param {Float32Array} x */
  forward(x) {
    const y = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) y[i] = 1 / (1 + Math.exp(-x[i]));
    this.y = y;
    return y;
  }

  /** @param {Float32Array} dy */
  backward(dy) {
    const y = /** @type {Float32Array} */ (this.y);
    const dx = new Float32Array(dy.length);
    for (let i = 0; i < dy.length; i++) dx[i] = dy[i] * y[i] * (1 - y[i]);
    return dx;
  }
}

/** Elementwise max(0, x); the gradient is 0 where the output is 0. */
export class ReLU {
  kind = "activation";
  /** @type {Float32Array | null} */
  y = null;

  /** @param {Float32Array} x */
  forward(x) {
    const y = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) y[i] = x[i] > 0 ? x[i] : 0;
    this.y = y;
    return y;
  }

  /** @param {Float32Array} dy */
  backward(dy) {
    const y = /** @type {Float32Array} */ (this.y);
    const dx = new Float32Array(dy.length);
    for (let i = 0; i < dy.length; i++) dx[i] = y[i] > 0 ? dy[i] : 0;
    return dx;
  }
}

/**
 * BN over the features of [n, features] rows, through the library's module (`new bn.BatchNorm(c)`:
 * momentum 0.1, eps 1e-5, weight 1, bias 0), trained by the same SGD step as the Linear layers.
 */
export class BatchNormLayer {
  kind = "bn";

  /**
   * @param {any} bn a backend from wasm-batchnorm's init()
   * @param {number} features
   */
  constructor(bn, features) {
    this.features = features;
    this.module = new bn.BatchNorm(features);
  }

  /**
   * @param {Float32Array} x
   * @param {number} n
   */
  forward(x, n) {
    return this.module.forward(x, [n, this.features]);
  }

  /** @param {Float32Array} dy */
  backward(dy) {
    return this.module.backward(dy);
  }

  /**
   * Reads the gradients of the last backward, then resets them where the module accumulates
   * gradients across backward calls (`zeroGrad`, as PyTorch's .grad); works either way.
   * @param {number} lr
   */
  step(lr) {
    const m = this.module;
    sgd(m.weight, m.weightGrad, lr);
    sgd(m.bias, m.biasGrad, lr);
    m.zeroGrad?.();
  }
}

/**
 * Softmax cross-entropy, mean over the batch.
 * @param {Float32Array} logits [n, k]
 * @param {Uint8Array} labels n labels in [0, k)
 * @param {number} k classes
 * @returns {{ loss: number, dlogits: Float32Array, correct: number }}
 */
export function softmaxCrossEntropy(logits, labels, k) {
  const n = labels.length;
  const dlogits = new Float32Array(n * k);
  let loss = 0;
  let correct = 0;
  for (let r = 0; r < n; r++) {
    const row = r * k;
    let max = -Infinity;
    let arg = 0;
    for (let j = 0; j < k; j++) if (logits[row + j] > max) (max = logits[row + j]), (arg = j);
    let sum = 0;
    for (let j = 0; j < k; j++) sum += Math.exp(logits[row + j] - max);
    loss += Math.log(sum) + max - logits[row + labels[r]];
    for (let j = 0; j < k; j++) dlogits[row + j] = Math.exp(logits[row + j] - max) / sum / n;
    dlogits[row + labels[r]] -= 1 / n;
    if (arg === labels[r]) correct++;
  }
  return { loss: loss / n, dlogits, correct };
}

/**
 * @typedef {object} NetConfig
 * @property {boolean} batchNorm BN in each hidden layer
 * @property {"before" | "after"} [placement] BN before the activation (default, as the paper; the
 *   Linear then has no bias) or after it
 * @property {"sigmoid" | "relu"} [activation] default "sigmoid"
 * @property {number} [initScale] weights ~ N(0, initScale^2 / fan_in); default 1
 * @property {number} seed initial weights
 * @property {number[]} [hidden] default [100, 100, 100]
 */

/** Names of the time categories a timed step is split into. */
export const TIME_KINDS = ["linear", "bn", "activation", "loss", "update"];

/** The MLP: Linear (+ BN) + activation per hidden layer, then a Linear to 10 logits. */
export class Net {
  /**
   * @param {any} bn a backend from wasm-batchnorm's init() (unused without batchNorm)
   * @param {NetConfig} config
   */
  constructor(bn, config) {
    const hidden = config.hidden ?? [100, 100, 100];
    const rand = prng(config.seed);
    const scale = config.initScale ?? 1;
    const Activation = (config.activation ?? "sigmoid") === "relu" ? ReLU : Sigmoid;
    /** @type {(Linear | BatchNormLayer | Sigmoid | ReLU)[]} */
    this.layers = [];
    /** Index of the layer whose output is the last hidden activation's input (the probed unit's layer). */
    this.probeLayer = -1;
    this.probeWidth = hidden[hidden.length - 1];
    let inputs = 784;
    const before = config.batchNorm && config.placement !== "after";
    for (const width of hidden) {
      this.layers.push(new Linear(inputs, width, { bias: !before, rand, scale }));
      if (before) this.layers.push(new BatchNormLayer(bn, width));
      this.probeLayer = this.layers.length - 1;
      this.layers.push(new Activation());
      if (config.batchNorm && !before) this.layers.push(new BatchNormLayer(bn, width));
      inputs = width;
    }
    this.layers.push(new Linear(inputs, 10, { bias: true, rand, scale }));
    /** @type {Record<string, number> | null} milliseconds per TIME_KINDS entry while timing */
    this.timing = null;
  }

  /** The BN layers, in order. */
  get bnLayers() {
    return /** @type {BatchNormLayer[]} */ (this.layers.filter((l) => l instanceof BatchNormLayer));
  }

  /** @param {boolean} training train() or eval() for every BN module */
  mode(training) {
    for (const l of this.bnLayers) l.module.train(training);
  }

  /**
   * Runs layers [0, end) on [n, 784] rows; `probe` receives the output of the probed layer.
   * @param {Float32Array} x
   * @param {number} n
   * @param {{ end?: number, probe?: (values: Float32Array) => void }} [o]
   */
  forward(x, n, o = {}) {
    const end = o.end ?? this.layers.length;
    let h = x;
    for (let i = 0; i < end; i++) {
      const layer = this.layers[i];
      const t0 = this.timing ? performance.now() : 0;
      h = layer.forward(h, n);
      if (this.timing) this.timing[layer.kind] += performance.now() - t0;
      if (i === this.probeLayer) o.probe?.(h);
    }
    return h;
  }

  /**
   * Backward through every layer (no dx for the input), then one SGD step.
   * @param {Float32Array} dlogits
   * @param {number} lr
   */
  backwardAndStep(dlogits, lr) {
    let d = dlogits;
    for (let i = this.layers.length - 1; i >= 0; i--) {
      const layer = this.layers[i];
      const t0 = this.timing ? performance.now() : 0;
      d = i === 0 ? /** @type {Linear} */ (layer).backward(d, false) : layer.backward(d);
      if (this.timing) this.timing[layer.kind] += performance.now() - t0;
    }
    const t0 = this.timing ? performance.now() : 0;
    for (const layer of this.layers) if ("step" in layer) layer.step(lr);
    if (this.timing) this.timing.update += performance.now() - t0;
  }

  /**
   * One SGD step on a mini-batch; returns the batch's loss (NaN once training has diverged).
   * @param {Float32Array} x [n, 784]
   * @param {Uint8Array} labels
   * @param {number} lr
   */
  trainStep(x, labels, lr) {
    const logits = this.forward(x, labels.length);
    const t0 = this.timing ? performance.now() : 0;
    const { loss, dlogits } = softmaxCrossEntropy(logits, labels, 10);
    if (this.timing) this.timing.loss += performance.now() - t0;
    this.backwardAndStep(dlogits, lr);
    return loss;
  }

  /** Frees the BN modules' wasm memory. */
  dispose() {
    for (const l of this.bnLayers) l.module.dispose();
  }
}

/**
 * @typedef {object} DigitSet
 * @property {Float32Array} x [n, 784] pixels in [0, 1]
 * @property {Uint8Array} labels
 * @property {number} n
 */

/**
 * Rows [start, start + count) of a set, or the rows listed in `index` (a copy).
 * @param {DigitSet} set
 * @param {number} start
 * @param {number} count
 * @param {Uint32Array} [index]
 * @returns {DigitSet}
 */
export function rows(set, start, count, index) {
  if (!index) return { x: set.x.subarray(start * 784, (start + count) * 784), labels: set.labels.subarray(start, start + count), n: count };
  const x = new Float32Array(count * 784);
  const labels = new Uint8Array(count);
  for (let r = 0; r < count; r++) {
    const j = index[start + r];
    x.set(set.x.subarray(j * 784, (j + 1) * 784), r * 784);
    labels[r] = set.labels[j];
  }
  return { x, labels, n: count };
}

/**
 * Calls `fn` on consecutive batches of `size` rows (the last may be shorter).
 * @param {DigitSet} set
 * @param {number} size
 * @param {(batch: DigitSet) => void} fn
 */
export function eachBatch(set, size, fn) {
  for (let start = 0; start < set.n; start += size) fn(rows(set, start, Math.min(size, set.n - start)));
}

/**
 * Accuracy in eval mode (BN with its running statistics); `probe` collects the probed layer's
 * `unit` over the set. Leaves the net in train mode.
 * @param {Net} net
 * @param {DigitSet} set
 * @param {{ unit?: number, probe?: Float32Array }} [o]
 */
export function accuracy(net, set, o = {}) {
  net.mode(false);
  let correct = 0;
  let at = 0;
  const unit = o.unit ?? 0;
  const out = o.probe;
  const width = net.probeWidth;
  eachBatch(set, 500, (b) => {
    const probe = out && ((/** @type {Float32Array} */ h) => {
      for (let r = 0; r < b.n; r++) out[at + r] = h[r * width + unit];
    });
    const logits = net.forward(b.x, b.n, { probe });
    correct += softmaxCrossEntropy(logits, b.labels, 10).correct;
    at += b.n;
  });
  net.mode(true);
  return correct / set.n;
}

/**
 * The p-th percentile (0..100) of sorted values, linearly interpolated.
 * @param {Float32Array} sorted
 * @param {number} p
 */
export function percentile(sorted, p) {
  const at = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(at);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo);
}

/**
 * Steps after which a run evaluates the test set (besides step 0 and its last step): every 25 up to
 * 500, where the curves move fast, then every 100.
 * @param {number} step
 */
export function evaluatesAt(step) {
  return step % (step <= 500 ? 25 : 100) === 0;
}

/**
 * @typedef {object} RunConfig
 * @property {boolean} batchNorm
 * @property {"before" | "after"} [placement]
 * @property {"sigmoid" | "relu"} [activation]
 * @property {number} lr
 * @property {number} [initScale]
 * @property {number} seed initial weights and batch order
 * @property {number} steps SGD steps
 * @property {number} [batch] default 60
 * @property {number[]} [thresholds] test accuracies to report the first step reaching; default [0.9]
 * @property {number} [probeUnit] the last hidden layer's unit whose activation input is recorded; default 0
 */

/**
 * @typedef {object} RunResult
 * @property {RunConfig} config
 * @property {{ step: number, test: number, loss: number, p15: number, p50: number, p85: number }[]} curve
 *   test accuracy, the mean training loss since the last point, and the 15/50/85th percentiles of the
 *   probed unit's activation input over the test set (eval mode)
 * @property {Record<string, number | null>} stepsTo first evaluated step reaching each threshold
 * @property {number} finalTest
 * @property {number} finalTrain accuracy on the whole training set, eval mode
 * @property {boolean} diverged the loss became NaN or infinite (training stopped there)
 * @property {number} ms training time, evaluations excluded
 */

/**
 * Trains one network: mini-batches drawn without replacement from reshuffled epochs (seeded), one
 * SGD step each, evaluated on the test set as `evaluatesAt` says.
 * @param {any} bn backend from init()
 * @param {{ train: DigitSet, test: DigitSet }} data
 * @param {RunConfig} config
 * @param {{ onPoint?: (point: RunResult["curve"][number], net: Net) => void, keep?: boolean }} [o]
 *   onPoint after each evaluation; keep: return the trained net too (else it is disposed)
 * @returns {RunResult & { net?: Net }}
 */
export function train(bn, data, config, o = {}) {
  const batch = config.batch ?? 60;
  const thresholds = config.thresholds ?? [0.9];
  const net = new Net(bn, { ...config });
  const order = new Uint32Array(data.train.n).map((_, i) => i);
  const rand = prng(config.seed ^ 0x5bd1e995);
  let at = data.train.n;
  const probe = new Float32Array(data.test.n);
  /** @type {RunResult["curve"]} */
  const curve = [];
  /** @type {Record<string, number | null>} */
  const stepsTo = Object.fromEntries(thresholds.map((t) => [String(t), null]));
  let lossSum = 0;
  let lossCount = 0;
  let ms = 0;
  let diverged = false;
  const point = (/** @type {number} */ step) => {
    const test = accuracy(net, data.test, { unit: config.probeUnit, probe });
    probe.sort();
    const p = { step, test, loss: lossSum / Math.max(1, lossCount), p15: percentile(probe, 15), p50: percentile(probe, 50), p85: percentile(probe, 85) };
    lossSum = lossCount = 0;
    curve.push(p);
    for (const t of thresholds) if (stepsTo[String(t)] === null && test >= t) stepsTo[String(t)] = step;
    o.onPoint?.(p, net);
  };
  point(0);
  for (let step = 1; step <= config.steps; step++) {
    if (at + batch > data.train.n) {
      shuffle(order, rand);
      at = 0;
    }
    const b = rows(data.train, at, batch, order);
    at += batch;
    const t0 = performance.now();
    const loss = net.trainStep(b.x, b.labels, config.lr);
    ms += performance.now() - t0;
    lossSum += loss;
    lossCount++;
    if (!Number.isFinite(loss)) {
      diverged = true;
      point(step);
      break;
    }
    if (evaluatesAt(step) || step === config.steps) point(step);
  }
  const result = {
    config,
    curve,
    stepsTo,
    finalTest: curve[curve.length - 1].test,
    finalTrain: accuracy(net, data.train),
    diverged,
    ms,
  };
  if (o.keep) return { ...result, net };
  net.dispose();
  return result;
}

/**
 * @typedef {{ mean: Float32Array, variance: Float32Array }[]} LayerStats
 *   per BN layer, the statistics eval mode normalizes with (running_mean, running_var)
 */

/**
 * The BN layers' running statistics (copies).
 * @param {Net} net
 * @returns {LayerStats}
 */
export function statsOf(net) {
  return net.bnLayers.map((l) => ({ mean: l.module.runningMean.slice(), variance: l.module.runningVar.slice() }));
}

/**
 * Sets the BN layers' running statistics.
 * @param {Net} net
 * @param {LayerStats} stats
 */
export function setStats(net, stats) {
  net.bnLayers.forEach((l, i) => {
    l.module.runningMean.set(stats[i].mean);
    l.module.runningVar.set(stats[i].variance);
  });
}

/**
 * PyTorch's torch.optim.swa_utils.update_bn: every BN module restarted with momentum None (the
 * cumulative average), the whole set run through the net in train mode in mini-batches (the last
 * one shorter), so each layer's statistics are the equal-weight average of per-batch means and
 * unbiased variances, each batch normalized by its own statistics upstream. Sets and returns them.
 * @param {any} bn backend from init()
 * @param {Net} net
 * @param {DigitSet} set
 * @param {number} [batch] default 60
 * @returns {LayerStats}
 */
export function updateBnStatistics(bn, net, set, batch = 60) {
  const layers = net.bnLayers;
  const trained = layers.map((l) => l.module);
  for (const l of layers) {
    const fresh = new bn.BatchNorm(l.features, { momentum: null });
    fresh.loadStateDict({ ...l.module.stateDict(), running_mean: new Float32Array(l.features), running_var: new Float32Array(l.features).fill(1), num_batches_tracked: 0 });
    l.module = fresh;
  }
  eachBatch(set, batch, (b) => net.forward(b.x, b.n));
  const stats = statsOf(net);
  layers.forEach((l, i) => {
    l.module.dispose();
    l.module = trained[i];
  });
  setStats(net, stats);
  return stats;
}

/**
 * Exact population statistics of the whole set, layer by layer in eval mode: the set goes through
 * the net once, and at each BN layer its input's per-channel mean and unbiased variance are taken
 * with the library's RunningStats (float64) before that layer normalizes with them, so every layer
 * sees the inputs it will see at inference. Sets and returns them.
 * @param {any} bn backend from init()
 * @param {Net} net
 * @param {DigitSet} set
 * @returns {LayerStats}
 */
export function exactStatistics(bn, net, set) {
  net.mode(false);
  let h = set.x;
  for (const layer of net.layers.slice(0, -1)) {
    if (layer instanceof BatchNormLayer) {
      const stats = new bn.RunningStats(layer.features).update(h, { shape: [set.n, layer.features] });
      layer.module.runningMean.set(stats.mean);
      layer.module.runningVar.set(stats.variance({ unbiased: true }));
    }
    h = layer.forward(h, set.n);
  }
  net.mode(true);
  return statsOf(net);
}
