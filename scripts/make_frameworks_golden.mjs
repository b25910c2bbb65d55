// Generates test/golden-frameworks/{keras,onnx}.json: what TensorFlow.js's BatchNormalization layer
// (tfjs-layers, cpu backend) and onnxruntime-node's BatchNormalization (opset 15) compute, for
// test/framework-conventions.test.ts. Run by hand; npm test does not need the frameworks:
//   mkdir /tmp/fw && cd /tmp/fw && npm init -y && npm i --ignore-scripts @tensorflow/tfjs@4 onnxruntime-node onnx-proto
//   node scripts/make_frameworks_golden.mjs /tmp/fw
// (--ignore-scripts: onnxruntime-node's install script only fetches GPU binaries; the CPU ones ship in the package.)
import { writeFileSync, mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

const dir = process.argv[2];
if (!dir) throw new Error("usage: node scripts/make_frameworks_golden.mjs <folder whose node_modules has @tensorflow/tfjs, onnxruntime-node, onnx-proto>");
const require = createRequire(join(dir, "package.json"));
const tf = require("@tensorflow/tfjs");
const ort = require("onnxruntime-node");
const { onnx } = require("onnx-proto");
const version = (name) => JSON.parse(readFileSync(require.resolve(`${name}/package.json`), "utf8")).version;
await tf.setBackend("cpu");

/** Deterministic normal(mean, std) float32 values (mulberry32 + Box-Muller). */
function randn(n, seed, std = 1, mean = 0) {
  let a = seed >>> 0;
  const u = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return Float32Array.from({ length: n }, () => mean + std * Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u()));
}
/** Float32 values as the shortest decimals that round back to them (a compact file). */
const list = (a) => Array.from(a, (v) => {
  for (let digits = 1; digits < 9; digits++) if (Math.fround(Number(v.toPrecision(digits))) === v) return Number(v.toPrecision(digits));
  return v;
});
const size = (shape) => shape.reduce((p, q) => p * q, 1);

// Keras / TensorFlow.js: a few training steps (layer.apply(x, { training: true })), then inference.
// tfjs-layers cannot train a layer without center or scale (tfjs#2868): those are checked against
// it in inference, and in training against a layer with gamma 1 and beta 0 (the same rule).
const KERAS = [
  { name: "nhwc axis -1", shape: [4, 3, 5, 6], axis: -1, momentum: 0.9, epsilon: 1e-3, center: true, scale: true },
  { name: "nc axis -1 default momentum", shape: [16, 5], axis: -1, momentum: 0.99, epsilon: 1e-3, center: true, scale: true },
  { name: "ncl axis 1", shape: [4, 5, 7], axis: 1, momentum: 0.8, epsilon: 1e-3, center: true, scale: true },
  { name: "nchw axis 1", shape: [3, 4, 5, 6], axis: 1, momentum: 0.9, epsilon: 1e-2, center: true, scale: true },
  { name: "nhwc last axis given as 3", shape: [2, 4, 4, 5], axis: 3, momentum: 0.9, epsilon: 1e-3, center: true, scale: true },
  { name: "no center", shape: [6, 3, 3, 4], axis: -1, momentum: 0.9, epsilon: 1e-3, center: false, scale: true },
  { name: "no scale", shape: [6, 3, 3, 4], axis: -1, momentum: 0.9, epsilon: 1e-3, center: true, scale: false },
  { name: "neither", shape: [10, 7], axis: -1, momentum: 0.9, epsilon: 1e-3, center: false, scale: false },
];

function kerasCase(c, k) {
  const axis = c.axis < 0 ? c.shape.length + c.axis : c.axis;
  const C = c.shape[axis];
  const gamma = c.scale ? randn(C, 100 + k, 0.3, 1) : null;
  const beta = c.center ? randn(C, 200 + k, 0.5) : null;
  const movingMean = randn(C, 300 + k, 0.5);
  const movingVariance = randn(C, 400 + k, 0.2, 1).map(Math.abs);
  const xs = [0, 1, 2].map((i) => randn(size(c.shape), 1000 * k + i, 2, 0.5 + i));
  const xEval = randn(size(c.shape), 1000 * k + 9, 2, 1);
  // what tfjs can train: gamma 1 and beta 0 stand for a missing scale or center
  const trainable = c.center && c.scale;
  const layer = tf.layers.batchNormalization({ axis: c.axis, momentum: c.momentum, epsilon: c.epsilon, center: true, scale: true });
  layer.apply(tf.zeros(c.shape));
  layer.setWeights([gamma ?? new Float32Array(C).fill(1), beta ?? new Float32Array(C), movingMean, movingVariance].map((a) => tf.tensor1d(a)));
  const steps = xs.map((x) => {
    const y = layer.apply(tf.tensor(x, c.shape), { training: true });
    const [, , mm, mv] = layer.getWeights();
    return { x: list(x), y: list(y.dataSync()), movingMean: list(mm.dataSync()), movingVariance: list(mv.dataSync()) };
  });
  const [, , mm, mv] = layer.getWeights();
  // inference through a layer with the configuration itself (center/scale off where the case says)
  const infer = tf.layers.batchNormalization({ axis: c.axis, momentum: c.momentum, epsilon: c.epsilon, center: c.center, scale: c.scale });
  infer.apply(tf.zeros(c.shape));
  infer.setWeights([...(c.scale ? [gamma] : []), ...(c.center ? [beta] : []), mm.dataSync(), mv.dataSync()].map((a) => tf.tensor1d(a)));
  const yEval = infer.apply(tf.tensor(xEval, c.shape), { training: false });
  const names = infer.getWeights().map((w) => w.name);
  return {
    name: c.name,
    shape: c.shape,
    config: infer.getConfig(),
    weightNames: names,
    gamma: gamma && list(gamma),
    beta: beta && list(beta),
    movingMean: list(movingMean),
    movingVariance: list(movingVariance),
    trainedWith: trainable ? "the layer" : "the layer with gamma 1 and beta 0 (tfjs#2868)",
    steps,
    eval: { x: list(xEval), y: list(yEval.dataSync()) },
  };
}

// ONNX BatchNormalization-15 on onnxruntime-node: training_mode 1 (Y, running_mean, running_var) and 0 (Y).
const ONNX = [
  { name: "nchw train", shape: [4, 3, 5, 6], epsilon: 1e-5, momentum: 0.9, training: 1 },
  { name: "nchw eval", shape: [4, 3, 5, 6], epsilon: 1e-5, momentum: 0.9, training: 0 },
  { name: "nc train momentum 0.7 eps 1e-3", shape: [16, 9], epsilon: 1e-3, momentum: 0.7, training: 1 },
  { name: "ncl eval", shape: [2, 5, 11], epsilon: 1e-4, momentum: 0.9, training: 0 },
  { name: "ncdhw train", shape: [2, 3, 3, 4, 5], epsilon: 1e-5, momentum: 0.9, training: 1 },
];

function onnxModel(c) {
  const C = c.shape[1];
  const value = (name, shape) => ({ name, type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: shape.map((d) => ({ dimValue: d })) } } } });
  const outputs = c.training ? ["Y", "running_mean", "running_var"] : ["Y"];
  const model = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: "", version: 15 }],
    graph: {
      name: "bn",
      node: [{
        opType: "BatchNormalization",
        input: ["X", "scale", "B", "input_mean", "input_var"],
        output: outputs,
        attribute: [
          { name: "epsilon", type: onnx.AttributeProto.AttributeType.FLOAT, f: c.epsilon },
          { name: "momentum", type: onnx.AttributeProto.AttributeType.FLOAT, f: c.momentum },
          { name: "training_mode", type: onnx.AttributeProto.AttributeType.INT, i: c.training },
        ],
      }],
      input: [value("X", c.shape), value("scale", [C]), value("B", [C]), value("input_mean", [C]), value("input_var", [C])],
      output: outputs.map((o) => value(o, o === "Y" ? c.shape : [C])),
    },
  });
  return onnx.ModelProto.encode(model).finish();
}

async function onnxCase(c, k) {
  const C = c.shape[1];
  const inputs = {
    X: randn(size(c.shape), 5000 + k, 1.5, 0.7),
    scale: randn(C, 5100 + k, 0.3, 1),
    B: randn(C, 5200 + k, 0.5),
    input_mean: randn(C, 5300 + k, 0.5),
    input_var: randn(C, 5400 + k, 0.2, 1).map(Math.abs),
  };
  const session = await ort.InferenceSession.create(onnxModel(c));
  const feeds = Object.fromEntries(Object.entries(inputs).map(([name, v]) => [name, new ort.Tensor("float32", v, name === "X" ? c.shape : [C])]));
  const out = await session.run(feeds);
  return {
    name: c.name,
    shape: c.shape,
    // the attributes as ONNX stores them: float32 (0.9 is 0.8999999761581421)
    attributes: { epsilon: Math.fround(c.epsilon), momentum: Math.fround(c.momentum), training_mode: c.training },
    ...Object.fromEntries(Object.entries(inputs).map(([name, v]) => [name, list(v)])),
    outputs: Object.fromEntries(Object.entries(out).map(([name, t]) => [name, list(t.data)])),
  };
}

const outDir = new URL("../test/golden-frameworks/", import.meta.url);
mkdirSync(outDir, { recursive: true });
const keras = { generator: "scripts/make_frameworks_golden.mjs", framework: `@tensorflow/tfjs ${version("@tensorflow/tfjs")} (cpu backend)`, cases: KERAS.map(kerasCase) };
writeFileSync(new URL("keras.json", outDir), JSON.stringify(keras) + "\n");
const onnxCases = [];
for (const [k, c] of ONNX.entries()) onnxCases.push(await onnxCase(c, k));
writeFileSync(new URL("onnx.json", outDir), JSON.stringify({ generator: "scripts/make_frameworks_golden.mjs", framework: `onnxruntime-node ${version("onnxruntime-node")}`, cases: onnxCases }) + "\n");
console.log(`wrote ${keras.cases.length} Keras and ${onnxCases.length} ONNX cases to test/golden-frameworks/`);
