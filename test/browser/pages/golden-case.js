// Runs one PyTorch reference case (test/golden/*.json; format in /work/shared/golden/README.md)
// through the functional API. Shared by the browser page (golden.js) and the Node side of the test,
// so both execute exactly the same calls.

/** @typedef {import("../../../dist/index.js").Backend} Backend */

/**
 * @typedef {object} GoldenCase
 * @property {string} name
 * @property {"forward_train" | "forward_eval" | "backward"} op
 * @property {"train" | "eval"} mode
 * @property {"NC" | "NCL" | "NCHW" | "NCDHW" | "NHWC"} layout
 * @property {number[]} shape logical [N, C, ...spatial], also for NHWC
 * @property {number} eps
 * @property {number | null} momentum
 * @property {boolean} affine
 * @property {Record<string, (number | string)[] | number>} inputs
 * @property {Record<string, (number | string)[] | number>} expected
 * @property {Record<string, (number | string)[] | number>} expected_f64
 * @property {Record<string, number | string>} torch_f32_max_abs_err
 */

/**
 * Float32 values of a golden array; Number() also parses the "Infinity" / "NaN" strings.
 * @param {unknown} a
 */
const f32 = (a) => (Array.isArray(a) ? Float32Array.from(a, Number) : null);

/**
 * Our results under the case's `expected` keys, as plain arrays (a float32 is exact as a JS number).
 * @param {Backend} bn
 * @param {GoldenCase} c
 * @returns {Record<string, number[]>}
 */
export function runCase(bn, c) {
  const { inputs } = c;
  const layout = c.layout === "NHWC" ? "channels-last" : "channels-first";
  const [n, channels, ...spatial] = c.shape;
  const shape = layout === "channels-last" ? [n, ...spatial, channels] : c.shape;
  const x = /** @type {Float32Array} */ (f32(inputs.x));
  const weight = f32(inputs.gamma);
  const runningMean = f32(inputs.running_mean);
  const runningVar = f32(inputs.running_var);
  const training = c.mode === "train";
  const batchStats = training || !runningMean;
  // momentum null is the module's cumulative average: the functional API takes its factor
  const momentum = c.momentum ?? 1 / (Number(inputs.num_batches_tracked ?? 0) + 1);
  const eps = c.eps;

  const { y, mean, invstd } = bn.batchNorm(x, {
    shape, layout, weight, bias: f32(inputs.beta), runningMean, runningVar, training, momentum, eps,
  });
  /** @type {Record<string, ArrayLike<number>>} */
  const out = { y };
  if (batchStats) Object.assign(out, { batch_mean: mean, save_invstd: invstd });
  if (training && runningMean) Object.assign(out, { running_mean: runningMean, running_var: runningVar });
  if (c.op === "backward") {
    const dy = /** @type {Float32Array} */ (f32(inputs.dy));
    const grads = bn.batchNormBackward(dy, x, {
      shape, layout, weight, eps, training: batchStats, mean, invstd, runningMean, runningVar,
    });
    out.dx = grads.dx;
    if (c.affine) Object.assign(out, { dgamma: grads.dweight, dbeta: grads.dbias });
  }
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, Array.from(v)]));
}
