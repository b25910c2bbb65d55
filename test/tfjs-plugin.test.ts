// The TensorFlow.js kernel plugin (wasm-batchnorm/tfjs) on tfjs 4.22's cpu and wasm backends:
// - tfjs-core's own batchNorm expectations (ported from tfjs-core/src/ops/batchnorm_test.ts, which
//   ships as dist/ops/batchnorm_test.js) pass with and without the plugin, and the plugin computes the
//   cases it claims (per-channel statistics) and hands the others (full-shape statistics) to tfjs;
// - tfjs-layers models with BatchNormalization (NHWC conv + BN, Dense + BN) give the same answers with
//   and without it, in inference, in a training-mode forward and in a trainOnBatch step;
// - the NCHW `axis: 1` model (and an NCL one) gives the float64 reference's answer with it, and
//   without it the wrong one tfjs gives today (tfjs#1106);
// - what falls back to tfjs's own kernel, registration, restoring and errors; the declarations accept
//   tfjs-core's module as `tf` (test/types/tfjs-usage.ts).
// tfjs-core's Node bundle leaves out the gradients; they load through the resolve hook that
// bench/peers uses (tfjs-gradients-hook.mjs), as ES modules registering into tfjs's global registry.
import { execFile } from "node:child_process";
import { createRequire, register } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { init, type Backend } from "../src/index.js";
import { registerTfjsKernels, unregisterTfjsKernels, type Tfjs, type TfjsBackendName } from "../src/tfjs.js";
import { checkBar, expectClose } from "./helpers.js";
import { randn, referenceForward } from "./reference.js";

register("../bench/peers/tfjs-gradients-hook.mjs", import.meta.url);
const tf = await import("@tensorflow/tfjs-core");
tf.enableProdMode(); // also silences the "install tfjs-node" banner
await import("@tensorflow/tfjs-backend-cpu");
const tfWasm = await import("@tensorflow/tfjs-backend-wasm");
// @ts-expect-error: an extension-less ES module tree without declarations, loaded for its side effect
await import("@tensorflow/tfjs-core/dist/register_all_gradients.js");
const tfl = await import("@tensorflow/tfjs-layers");
const require = createRequire(import.meta.url);
tfWasm.setWasmPaths(`${path.dirname(require.resolve("@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm"))}/`);

type Tensor = InstanceType<typeof tf.Tensor>;
const TF_BACKENDS: TfjsBackendName[] = ["cpu", "wasm"];
const EPS = 1e-3;

let bn: Backend;
let calls: ReturnType<typeof vi.spyOn>;

beforeAll(async () => {
  bn = await init();
  calls = vi.spyOn(bn, "batchNorm");
});

afterAll(() => {
  unregisterTfjsKernels(tf);
  calls.mockRestore();
});

async function useBackend(name: TfjsBackendName): Promise<void> {
  expect(await tf.setBackend(name)).toBe(true);
  await tf.ready();
}

/** Runs `f` with the plugin registered on `name` (and unregistered after) or without it; returns f's value and our kernel's calls. */
async function withPlugin<T>(on: boolean, name: TfjsBackendName, f: () => Promise<T>): Promise<{ value: T; ours: number }> {
  const plugin = on ? await registerTfjsKernels(tf, { backends: [name], bn }) : null;
  calls.mockClear();
  try {
    tf.engine().startScope();
    try {
      return { value: await f(), ours: calls.mock.calls.length };
    } finally {
      tf.engine().endScope();
    }
  } finally {
    plugin?.unregister();
  }
}

// ---------------------------------------------------------------------------------------------
// tfjs-core's batchNorm tests (expectations as tfjs writes them: the formula inline, or TensorFlow's
// numbers, compared with its expectArraysClose: |a - e| <= 1e-3 on float32 backends)

function expectArraysClose(actual: ArrayLike<number>, expected: ArrayLike<number>, epsilon = 1e-3): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    expect(Math.abs(actual[i] - expected[i]), `[${i}]: ${actual[i]} vs ${expected[i]}`).toBeLessThanOrEqual(epsilon);
  }
}

/** tfjs's inline formula: offset + (x - mean) * scale / sqrt(variance + eps), statistics indexed by channel (last axis). */
function formula(x: number[], c: number, mean: number[], variance: number[], offset?: number[], scale?: number[]): number[] {
  return x.map((v, i) => (offset ? offset[i % c] : 0) + ((v - mean[i % c]) * (scale ? scale[i % c] : 1)) / Math.sqrt(variance[i % c] + EPS));
}

interface CoreCase {
  name: string;
  /** Whether the plugin computes it (per-channel statistics) or hands it to tfjs's kernel. */
  ours: boolean;
  run(): Promise<void>;
}

const X = [2, 4, 9, 23];
const MEAN = [1, 2];
const VAR = [2, 3];
/** The simple cases of one rank: no offset or scale, no offset, no scale, both, and as a tensor-like object. */
function simpleCases(rank: 2 | 3 | 4, shape: number[], nested: unknown): CoreCase[] {
  const op = { 2: tf.batchNorm2d, 3: tf.batchNorm3d, 4: tf.batchNorm4d }[rank] as typeof tf.batchNorm;
  const dims = shape.join("x");
  const run = (offset?: number[], scale?: number[]) => async () => {
    const r = op(tf.tensor(X, shape), tf.tensor1d(MEAN), tf.tensor1d(VAR), offset && tf.tensor1d(offset), scale && tf.tensor1d(scale), EPS);
    expectArraysClose(await r.data(), formula(X, 2, MEAN, VAR, offset, scale));
  };
  return [
    { name: `simple batchnorm${rank}D, no offset or scale, ${dims}`, ours: true, run: run() },
    { name: `simple batchnorm${rank}D, no offset, ${dims}`, ours: true, run: run(undefined, [4, 5]) },
    { name: `simple batchnorm${rank}D, no scale, ${dims}`, ours: true, run: run([4, 5]) },
    { name: `simple batchnorm${rank}D, ${dims}`, ours: true, run: run([3, 4], [4, 5]) },
    {
      name: `batchnorm${rank}D accepts a tensor-like object`,
      ours: true,
      async run() {
        const r = op(nested as number[], MEAN, VAR, [3, 4], [4, 5], EPS);
        expectArraysClose(await r.data(), formula(X, 2, MEAN, VAR, [3, 4], [4, 5]));
      },
    },
  ];
}

/** tfjs's gradient cases of one rank: 1-D statistics, and statistics of x's shape. */
function gradientCases(rank: 2 | 3 | 4, shape: number[]): CoreCase[] {
  const op = { 2: tf.batchNorm2d, 3: tf.batchNorm3d, 4: tf.batchNorm4d }[rank] as typeof tf.batchNorm;
  // tfjs's 4D tests use dy = -1, the others +1
  const sign = rank === 4 ? -1 : 1;
  const s = (a: number[]) => a.map((v) => sign * v);
  const grads = async (inputs: Tensor[], expected: (number[] | null)[], shapes: number[][]) => {
    const dy = tf.fill(shape, sign);
    const g = tf.grads((x: Tensor, m: Tensor, v: Tensor, o: Tensor, sc: Tensor) => op(x, m, v, o, sc, EPS))(inputs, dy);
    for (const [k, t] of g.entries()) {
      expectArraysClose(await t.data(), expected[k] ?? (await tf.sum(dy, shape.map((_, i) => i).slice(0, -1)).data()));
      expect(t.shape).toEqual(shapes[k]);
    }
  };
  return [
    {
      name: `simple batchnorm${rank}D gradients, ${shape.join("x")}`,
      ours: true,
      run: () =>
        grads(
          [tf.tensor(X, shape), tf.tensor1d(MEAN), tf.tensor1d(VAR), tf.tensor1d([3, 4]), tf.tensor1d([2, 5])],
          [s([1.414, 2.887, 1.414, 2.887]), s([-2.828, -5.773]), s([-3.18, -11.06]), null, s([6.362, 13.277])],
          [shape, [2], [2], [2], [2]],
        ),
    },
    {
      name: `batchnorm${rank}D gradients, same shapes in x, mean and variance`,
      ours: false,
      run: () =>
        grads(
          [[10, 20, 30, 40], [0, 5, 10, 15], [2, 4, 6, 8], [0, 0, 0, 0], [2, 5, 2, 5]].map((v) => tf.tensor(v, shape)),
          [s([1.414, 2.5, 0.816, 1.768]), s([-1.414, -2.5, -0.816, -1.768]), s([-3.533, -4.686, -1.36, -2.762]), s([1, 1, 1, 1]), s([7.069, 7.499, 8.164, 8.838])],
          [shape, shape, shape, shape, shape],
        ),
    },
  ];
}

const CORE_CASES: CoreCase[] = [
  ...simpleCases(4, [2, 1, 1, 2], [[[[2, 4]]], [[[9, 23]]]]),
  ...gradientCases(4, [2, 1, 1, 2]),
  ...simpleCases(3, [2, 1, 2], [[[2, 4]], [[9, 23]]]),
  {
    name: "batchnorm3D, x,mean,var,offset,scale are all 3D",
    ours: false,
    async run() {
      const st = [[1, 2, 3, 4], [2, 3, 4, 5], [3, 4, 5, 6], [4, 5, 6, 7]];
      const [m, v, o, sc] = st.map((a) => tf.tensor3d(a, [2, 1, 2]));
      const r = tf.batchNorm3d(tf.tensor3d(X, [2, 1, 2]), m, v, o, sc, EPS);
      expectArraysClose(await r.data(), X.map((x, i) => st[2][i] + ((x - st[0][i]) * st[3][i]) / Math.sqrt(st[1][i] + EPS)));
    },
  },
  ...gradientCases(3, [2, 1, 2]),
  {
    name: "batchnorm matches tensorflow, 2x3x3",
    ours: true,
    async run() {
      const x = tf.tensor3d([
        0.49955603, 0.04158615, -1.09440524, 2.03854165, -0.61578344, 2.87533573, 1.18105987, 0.807462, 1.87888837,
        2.26563962, -0.37040935, 1.35848753, -0.75347094, 0.15683117, 0.91925946, 0.34121279, 0.92717143, 1.89683965,
      ], [2, 3, 3]);
      const mean = tf.tensor1d([0.39745062, -0.48062894, 0.4847822]);
      const variance = tf.tensor1d([0.32375343, 0.67117643, 1.08334653]);
      const offset = tf.tensor1d([0.69398749, -1.29056387, 0.9429723]);
      const scale = tf.tensor1d([-0.5607271, 0.9878457, 0.25181573]);
      expectArraysClose(await tf.batchNorm3d(x, mean, variance, offset, scale, EPS).data(), [
        0.59352049, -0.66135202, 0.5610874, -0.92077015, -1.45341019, 1.52106473, -0.07704776, 0.26144429, 1.28010017,
        -1.14422404, -1.15776136, 1.15425493, 1.82644104, -0.52249442, 1.04803919, 0.74932291, 0.40568101, 1.2844412,
      ]);
    },
  },
  ...simpleCases(2, [2, 2], [[2, 4], [9, 23]]),
  ...gradientCases(2, [2, 2]),
  {
    name: "gradient with clones batchnorm2D",
    ours: true,
    async run() {
      const inputs = [tf.tensor2d(X, [2, 2]), tf.tensor1d(MEAN), tf.tensor1d(VAR), tf.tensor1d([3, 4]), tf.tensor1d([2, 5])];
      const f = (x: Tensor, m: Tensor, v: Tensor, o: Tensor, s: Tensor) => tf.batchNorm2d(x.clone(), m.clone(), v.clone(), o.clone(), s.clone(), EPS).clone();
      const g = tf.grads(f)(inputs, tf.ones([2, 2]));
      const expected = [[1.414, 2.887, 1.414, 2.887], [-2.828, -5.773], [-3.18, -11.06], [2, 2], [6.362, 13.277]];
      for (const [k, t] of g.entries()) expectArraysClose(await t.data(), expected[k]);
    },
  },
  {
    name: "gradient with clones (shapes)",
    ours: false,
    async run() {
      const inputs = [0, 1, 2, 3, 4].map(() => tf.zeros([2, 2]));
      const f = (x: Tensor, m: Tensor, v: Tensor, o: Tensor, s: Tensor) => tf.batchNorm2d(x.clone(), m.clone(), v.clone(), o.clone(), s.clone(), EPS).clone();
      for (const t of tf.grads(f)(inputs)) expect(t.shape).toEqual([2, 2]);
    },
  },
  {
    name: "batchnorm2D matches tensorflow, 3x3",
    ours: true,
    async run() {
      const x = tf.tensor2d([0.3136892, 0.92389025, 0.594782, 0.05021042, 0.67545404, 0.93910035, 0.13277993, 0.96474269, 0.88608916], [3, 3]);
      const mean = tf.tensor1d([0.19526312, 0.74857256, 0.45166398]);
      const variance = tf.tensor1d([0.22963001, 0.61521992, 0.46623685]);
      const offset = tf.tensor1d([0.43098484, 0.77712237, 0.47916298]);
      const scale = tf.tensor1d([0.62186907, 0.85673736, 0.19201061]);
      expectArraysClose(await tf.batchNorm2d(x, mean, variance, offset, scale, EPS).data(), [
        0.58433646, 0.96846228, 0.51936529, 0.24315402, 0.69732157, 0.61608542, 0.35007446, 1.01304821, 0.60119441,
      ]);
    },
  },
];
// Not ported: tfjs's "throws when passed ... as a non-tensor / a string tensor" cases, which the op
// rejects before any kernel runs.

describe.each(TF_BACKENDS)("tfjs-core's batchNorm tests on the %s backend", (name) => {
  beforeAll(() => useBackend(name));
  it.each(CORE_CASES.map((c) => [c.name, c] as const))("%s: passes without and with the plugin", async (_, c) => {
    const without = await withPlugin(false, name, () => c.run());
    expect(without.ours).toBe(0);
    const withIt = await withPlugin(true, name, () => c.run());
    // the plugin computes per-channel statistics and hands full-shape ones to tfjs's kernel
    if (c.ours) expect(withIt.ours).toBeGreaterThan(0);
    else expect(withIt.ours).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------
// tfjs-layers models

type LayersModel = InstanceType<typeof tfl.LayersModel>;

/** Deterministic weights (moving variances positive) so every run starts from the same model. */
function weightsOf(model: LayersModel, seed: number): Tensor[] {
  return model.getWeights().map((w, i) => {
    const v = randn(w.size, seed + i, 0.5, w.name.includes("gamma") || w.name.includes("moving_variance") ? 1 : 0);
    return tf.tensor(w.name.includes("moving_variance") ? v.map((a) => Math.abs(a) + 0.1) : v, w.shape);
  });
}

const models: { name: string; input: number[]; make(): LayersModel }[] = [
  {
    // a 1x1 convolution as Dense on the last axis (tfjs-backend-wasm has no Conv2D gradient)
    name: "NHWC 1x1 convolution + BatchNormalization (axis -1)",
    input: [4, 6, 5, 3],
    make: () =>
      tfl.sequential({
        layers: [
          tfl.layers.dense({ inputShape: [6, 5, 3], units: 8 }),
          tfl.layers.batchNormalization({ axis: -1, momentum: 0.9, epsilon: EPS }),
          tfl.layers.activation({ activation: "relu" }),
        ],
      }),
  },
  {
    name: "Dense + BatchNormalization",
    input: [16, 5],
    make: () =>
      tfl.sequential({
        layers: [
          tfl.layers.dense({ inputShape: [5], units: 7 }),
          tfl.layers.batchNormalization({ momentum: 0.99, epsilon: 1e-2 }),
          tfl.layers.dense({ units: 2 }),
        ],
      }),
  },
];

/** Same answers within float32's reach: 1e-5 of the largest value (tfjs rounds its float64 JS arithmetic, ours fuses scale and shift). */
const sameAnswers = (a: ArrayLike<number>, b: ArrayLike<number>) => expectClose(a, b, 1e-5);

describe.each(TF_BACKENDS)("tfjs-layers models on the %s backend", (name) => {
  beforeAll(() => useBackend(name));

  it.each(models.map((m) => [m.name, m] as const))("%s: the same predictions, training-mode outputs and trainOnBatch step with and without the plugin", async (_, m) => {
    const model = m.make();
    const initial = weightsOf(model, 11);
    const x = tf.tensor(randn(m.input.reduce((p, d) => p * d, 1), 5, 2, 0.5), m.input);
    const outShape = model.outputs[0].shape.map((d) => d ?? m.input[0]);
    const target = tf.tensor(randn(outShape.reduce((p, d) => p * d, 1), 6), outShape);
    model.compile({ optimizer: tf.train.sgd(0.05), loss: "meanSquaredError" });
    const run = async () => {
      model.setWeights(initial);
      const predicted = await (model.predict(x) as Tensor).data();
      const training = await (model.apply(x, { training: true }) as Tensor).data();
      model.setWeights(initial);
      const loss = (await model.trainOnBatch(x, target)) as number;
      const weights = await Promise.all(model.getWeights().map((w) => w.data()));
      return { predicted, training, loss, weights };
    };
    const tfjs = await withPlugin(false, name, run);
    const ours = await withPlugin(true, name, run);
    // predict, the training-mode apply and the training step's forward each ran our kernel
    expect(ours.ours).toBeGreaterThanOrEqual(3);
    sameAnswers(ours.value.predicted, tfjs.value.predicted);
    sameAnswers(ours.value.training, tfjs.value.training);
    expect(Math.abs(ours.value.loss - tfjs.value.loss)).toBeLessThanOrEqual(1e-5 * Math.max(1, tfjs.value.loss));
    for (const [k, w] of ours.value.weights.entries()) sameAnswers(w, tfjs.value.weights[k]);
    // the step did move the weights (so comparing them says something)
    expect(Math.max(...ours.value.weights.map((w, k) => Math.max(...Array.from(w, (v, i) => Math.abs(v - initial[k].dataSync()[i])))))).toBeGreaterThan(1e-4);
    model.dispose();
  });

  // tfjs#1106: tfjs's kernels index [1, C, 1, 1] (or [1, C, 1]) statistics by flat index modulo C
  it.each([
    ["NCHW", [3, 4, 5, 6]],
    ["NCL", [4, 5, 7]],
  ])("%s BatchNormalization (axis 1): the float64 reference's answer with the plugin, tfjs#1106's wrong one without", async (_, shape) => {
    const [n, c] = shape;
    const model = tfl.sequential({ layers: [tfl.layers.batchNormalization({ inputShape: shape.slice(1), axis: 1, momentum: 0.9, epsilon: EPS })] });
    const initial = weightsOf(model, 21);
    const [gamma, beta, movingMean, movingVariance] = initial.map((t) => t.dataSync());
    const xs = randn(shape.reduce((p, d) => p * d, 1), 8, 2, 1);
    const x = tf.tensor(xs, shape);
    const run = async () => {
      model.setWeights(initial);
      return { predicted: await (model.predict(x) as Tensor).data(), training: await (model.apply(x, { training: true }) as Tensor).data() };
    };
    const tfjs = await withPlugin(false, name, run);
    const ours = await withPlugin(true, name, run);
    expect(ours.ours).toBe(2);
    const memoryShape = [n, c, shape.slice(2).reduce((p, d) => p * d, 1)];
    const common = { shape: memoryShape, weight: gamma, bias: beta, eps: EPS };
    const inference = referenceForward(xs, { ...common, runningMean: movingMean, runningVar: movingVariance, training: false }).y;
    const training = referenceForward(xs, { ...common, training: true }).y;
    expect(checkBar("predicted y", ours.value.predicted, inference, 0)).toBeNull();
    expect(checkBar("training-mode y", ours.value.training, training, 0)).toBeNull();
    for (const [q, wrong, right] of [["predicted y", tfjs.value.predicted, inference], ["training-mode y", tfjs.value.training, training]] as const) {
      const scale = Math.max(...Array.from(right, Math.abs));
      const err = Math.max(...Array.from(right, (v, i) => Math.abs(wrong[i] - v)));
      expect(err, `${q}: tfjs#1106 fixed in this tfjs?`).toBeGreaterThan(0.01 * scale);
    }
    model.dispose();
  });
});

// ---------------------------------------------------------------------------------------------
// What falls back, registration and errors

describe.each(TF_BACKENDS)("falling back to tfjs's kernel on the %s backend", (name) => {
  beforeAll(() => useBackend(name));
  const run = (inputs: Record<string, Tensor>, eps = EPS) => tf.engine().runKernel("FusedBatchNorm", inputs, { varianceEpsilon: eps }) as Tensor;
  const x = () => tf.tensor4d(randn(2 * 3 * 4 * 5, 3), [2, 3, 4, 5]);
  const cases: [string, () => Tensor][] = [
    ["scalar statistics", () => run({ x: x(), mean: tf.scalar(0.5), variance: tf.scalar(2) })],
    ["statistics of x's shape", () => run({ x: x(), mean: tf.randomNormal([2, 3, 4, 5], 0, 1, "float32", 1), variance: tf.ones([2, 3, 4, 5]) })],
    ["statistics along two axes", () => run({ x: x(), mean: tf.zeros([4, 5]), variance: tf.ones([4, 5]) })],
    ["mean and variance on different axes", () => run({ x: x(), mean: tf.zeros([1, 1, 1, 5]), variance: tf.ones([1, 3, 1, 1]) })],
    ["statistics that do not broadcast", () => run({ x: x(), mean: tf.zeros([3]), variance: tf.ones([3]) })],
    ["an int32 input", () => run({ x: tf.tensor4d([1, 2, 3, 4], [1, 1, 2, 2], "int32"), mean: tf.zeros([2]), variance: tf.ones([2]) })],
    ["eps 0", () => run({ x: x(), mean: tf.zeros([5]), variance: tf.ones([5]) }, 0)],
    ["an empty input", () => run({ x: tf.zeros([0, 3, 4, 5]), mean: tf.zeros([5]), variance: tf.ones([5]) })],
  ];
  it.each(cases)("%s: tfjs's own kernel, the same answer", async (_, f) => {
    const tfjs = await withPlugin(false, name, async () => f().data());
    const ours = await withPlugin(true, name, async () => f().data());
    expect(ours.ours).toBe(0);
    expect(ours.value).toEqual(tfjs.value);
  });

  it("one channel ([1] statistics on a last axis of 1), and statistics given as [1, 1, 1, C]: computed per channel", async () => {
    const inputs = [
      { x: tf.tensor4d(randn(12, 4), [2, 3, 2, 1]), mean: tf.tensor1d([0.3]), variance: tf.tensor1d([2]) },
      { x: x(), mean: tf.tensor4d(randn(5, 5), [1, 1, 1, 5]), variance: tf.tensor4d([1, 2, 3, 4, 5], [1, 1, 1, 5]) },
    ];
    for (const i of inputs) {
      const tfjs = await withPlugin(false, name, async () => run(i).data());
      const ours = await withPlugin(true, name, async () => run(i).data());
      expect(ours.ours).toBe(1);
      sameAnswers(ours.value, tfjs.value);
    }
  });

  it("an error from our kernel (an async call in flight on its backend) reaches the caller and leaves no output data behind", async () => {
    const busy = await init({ backend: "scalar", threads: 1 });
    const plugin = await registerTfjsKernels(tf, { backends: [name], bn: busy });
    const [xs, m, v] = [x(), tf.zeros([5]), tf.ones([5])];
    const dataIds = () => (tf.backend() as unknown as { numDataIds(): number }).numDataIds();
    try {
      const pending = busy.batchNormAsync(new Float32Array(1 << 20), { shape: [1 << 14, 64] });
      const before = dataIds();
      expect(() => tf.batchNorm(xs, m, v)).toThrow(/an async call is in flight on this backend/);
      expect(dataIds()).toBe(before);
      await pending;
      sameAnswers(await tf.batchNorm(xs, m, v).data(), Array.from(xs.dataSync(), (a) => a / Math.sqrt(1 + EPS)));
    } finally {
      plugin.unregister();
      tf.dispose([xs, m, v]);
    }
  });

  it("[C, 1, 1] statistics on NCHW (tf.batchNorm's own ranks): per channel of axis 1", async () => {
    const xs = x();
    const [m, v, o, sc] = [randn(3, 6), [0.5, 1, 2], randn(3, 7), randn(3, 8, 1, 1)];
    const stat = (a: ArrayLike<number>) => tf.tensor3d(Array.from(a), [3, 1, 1]);
    const r = await withPlugin(true, name, async () => tf.batchNorm(xs, stat(m), stat(v), stat(o), stat(sc), EPS).data());
    expect(r.ours).toBe(1);
    const expected = referenceForward(xs.dataSync(), { shape: [2, 3, 20], weight: sc, bias: o, runningMean: m, runningVar: v, training: false, eps: EPS }).y;
    expect(checkBar("y", r.value, expected, 0)).toBeNull();
  });

  it("leaves no tensor behind", async () => {
    const m = tf.tensor1d([1, 2, 3, 4, 5]);
    const v = tf.tensor1d([1, 2, 3, 4, 5]);
    const xs = x();
    const plugin = await registerTfjsKernels(tf, { backends: [name], bn });
    try {
      const before = tf.memory().numTensors;
      tf.batchNorm(xs, m, v).dispose();
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      plugin.unregister();
      tf.dispose([m, v, xs]);
    }
  });
});

describe("the wasm backend's heap", () => {
  beforeAll(() => useBackend("wasm"));

  it("growing while the output is made (which detaches views of it) still gives the right answer", async () => {
    const heap = () => (tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm.HEAPU8.buffer.byteLength;
    // x larger than the heap's present size: once x is in, the output cannot fit without growing it
    const c = 8;
    const rows = Math.ceil(heap() / 4 / c) + (1 << 16);
    const xs = new Float32Array(rows * c).map((_, i) => (i % c) + (i % 7));
    const r = await withPlugin(true, "wasm", async () => {
      const x = tf.tensor2d(xs, [rows, c]);
      const before = heap();
      const y = await tf.batchNorm(x, tf.tensor1d([0, 1, 2, 3, 4, 5, 6, 7]), tf.fill([c], 4), tf.fill([c], 1), undefined, EPS).data();
      return { grew: heap() > before, y };
    });
    expect(r.ours).toBe(1);
    expect(r.value.grew).toBe(true);
    const expected = Array.from(xs, (v, i) => (v - (i % c)) / Math.sqrt(4 + EPS) + 1);
    expectClose(r.value.y, expected, 1e-6);
  });
});

describe("registration", () => {
  it("replaces FusedBatchNorm on the backends asked (default: cpu and wasm, with init()'s backend) and restores tfjs's own configs", async () => {
    const originals = TF_BACKENDS.map((b) => tf.getKernel("FusedBatchNorm", b));
    const plugin = await registerTfjsKernels(tf);
    expect(plugin.backends).toEqual(["cpu", "wasm"]);
    expect(plugin.bn).toBe(bn); // init()'s backend, shared
    for (const [k, b] of TF_BACKENDS.entries()) {
      const config = tf.getKernel("FusedBatchNorm", b);
      expect(config).not.toBe(originals[k]);
      expect(config.setupFunc).toBe(originals[k].setupFunc);
    }
    // registering again keeps the original to restore
    const again = await registerTfjsKernels(tf, { backends: ["wasm"], bn });
    expect(again.backends).toEqual(["wasm"]);
    expect(unregisterTfjsKernels(tf, ["cpu"])).toEqual(["cpu"]);
    expect(tf.getKernel("FusedBatchNorm", "cpu")).toBe(originals[0]);
    plugin.unregister();
    expect(TF_BACKENDS.map((b) => tf.getKernel("FusedBatchNorm", b))).toEqual(originals);
    expect(TF_BACKENDS.map((b) => tf.getKernel("FusedBatchNorm", b))[1]).toBe(originals[1]);
    expect(unregisterTfjsKernels(tf)).toEqual([]);
  });

  it("throws for a non-tfjs object, an unknown option or backend, and a backend tfjs does not have", async () => {
    await expect(registerTfjsKernels({} as Tfjs)).rejects.toThrow(/^tf: expected TensorFlow\.js/);
    await expect(registerTfjsKernels(tf, { backend: ["cpu"] } as never)).rejects.toThrow(/backend: unknown option \(did you mean 'backends'\?\)/);
    await expect(registerTfjsKernels(tf, { backends: ["webgl"] } as never)).rejects.toThrow(TypeError);
    await expect(registerTfjsKernels(tf, { backends: [] })).rejects.toThrow(/backends: expected a non-empty array/);
    const empty: Tfjs = { getKernel: () => undefined, registerKernel: () => {}, unregisterKernel: () => {} };
    await expect(registerTfjsKernels(empty, { backends: ["wasm"] })).rejects.toThrow(/no FusedBatchNorm kernel for 'wasm'.*tfjs-backend-wasm/);
    await expect(registerTfjsKernels(empty)).rejects.toThrow(/no FusedBatchNorm kernel for 'cpu' or 'wasm'/);
    expect(() => unregisterTfjsKernels(tf, ["gpu"] as never)).toThrow(TypeError);
  });
});

it("the declarations accept tfjs-core's module and reject what the runtime rejects (test/types/tfjs-usage.ts)", async () => {
  const tsc = require.resolve("typescript/bin/tsc");
  const project = fileURLToPath(new URL("./types/tsconfig.tfjs.json", import.meta.url));
  const run = promisify(execFile)(process.execPath, [tsc, "-p", project], { encoding: "utf8" });
  await expect(run.then(({ stdout }) => stdout, (e: { stdout: string }) => e.stdout)).resolves.toBe("");
}, 60_000);
