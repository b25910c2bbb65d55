// The benchmark's workloads and operations, their seeded input data, the float64 reference answers
// (test/reference.js) and the one check every implementation passes before it is timed.
// Shared by bench/run.mjs and bench/peers/run.mjs.
import { maxAbs, maxAbsDiff, randn, referenceBackward, referenceForward } from "../test/reference.js";

/**
 * @typedef {object} Workload
 * @property {string} id
 * @property {string} name
 * @property {number[]} shape     memory order
 * @property {'channels-first' | 'channels-last'} layout
 * @property {string} note
 * @property {string[]} quickOps  the operations a quick run measures
 */

/** @type {Workload[]} */
export const WORKLOADS = [
  { id: "S1", name: "NCHW 32x64x56x56", shape: [32, 64, 56, 56], layout: "channels-first", note: "conv activations, ResNet stage 1", quickOps: ["train", "infer", "backward"] },
  { id: "S2", name: "NCHW 32x256x14x14", shape: [32, 256, 14, 14], layout: "channels-first", note: "many channels, small planes", quickOps: ["train", "infer", "backward"] },
  { id: "S3", name: "NC 256x1024", shape: [256, 1024], layout: "channels-first", note: "BatchNorm1d on features (rows of C)", quickOps: ["train", "infer", "backward"] },
  { id: "S4", name: "NCHW 1x64x56x56", shape: [1, 64, 56, 56], layout: "channels-first", note: "single-image inference", quickOps: ["infer"] },
  { id: "S5", name: "NHWC 32x56x56x64", shape: [32, 56, 56, 64], layout: "channels-last", note: "channels-last, same size as S1", quickOps: ["train", "infer", "backward"] },
];

/**
 * A tiny call, [2, 64]: fixed per-call costs only (the threads section checks that a threaded
 * backend keeps it on one thread at no cost). Not in WORKLOADS: it has no bandwidth to speak of.
 * @type {Workload}
 */
export const TINY = { id: "tiny", name: "NC 2x64", shape: [2, 64], layout: "channels-first", note: "tiny call: per-call costs", quickOps: ["train", "infer", "backward"] };

/**
 * `traffic`: the minimum bytes an implementation must move, in units of the tensor's size
 * (inference reads x and writes y: 2; training reads x for the statistics, then reads x again and
 * writes y: 3; backward reads dy and x to reduce, then reads dy and x and writes dx: 5).
 * `passes` = traffic / 2: the op's time at memory speed, in units of one tensor copy (which
 * reads once and writes once).
 */
export const OPS = [
  { id: "train", name: "training forward", detail: "batch statistics + normalize + running update", traffic: 3, passes: 1.5 },
  { id: "infer", name: "inference forward", detail: "running statistics, normalize", traffic: 2, passes: 1 },
  { id: "backward", name: "training backward", detail: "dx, dweight, dbias through the batch statistics", traffic: 5, passes: 2.5 },
];

export const TRAFFIC_DEFINITION =
  "useful traffic = minimum bytes moved: inference 2x tensor bytes (read x, write y), training 3x (read x for the statistics, read x + write y), backward 5x (read dy + x to reduce, read dy + x + write dx); GB/s = useful bytes / median time. Bandwidth bound = copy time (dst.set(src), one read + one write of the tensor, measured in the same run) x passes (inference 1, training 1.5, backward 2.5); 'x bound' = median / bound (1.00 = as fast as a copy).";

export const MOMENTUM = 0.1;
export const EPS = 1e-5;

/** Tolerance of the check: |got - ref| <= REL * max|ref| + ABS, elementwise, per output array. */
export const TOLERANCE = { rel: 1e-4, abs: 1e-5 };
export const TOLERANCE_DEFINITION = `every output array (y or dx; mean, invstd, running stats, dweight, dbias where the implementation returns them) checked against the float64 reference (test/reference.js) before timing: max |got - ref| <= ${TOLERANCE.rel} * max|ref| + ${TOLERANCE.abs}; 'check' shows max |got - ref| / max|ref| over the arrays`;

/** @param {Workload} w */
export const lengthOf = (w) => w.shape.reduce((a, b) => a * b, 1);
/** @param {Workload} w */
export const channelsOf = (w) => (w.layout === "channels-last" ? w.shape[w.shape.length - 1] : w.shape[1]);
/** @param {Workload} w */
export const bytesOf = (w) => lengthOf(w) * 4;
/** Values per channel. */
export const countOf = (w) => lengthOf(w) / channelsOf(w);

/** @param {string} id  one of WORKLOADS, or TINY's */
export const workload = (id) => {
  const w = [...WORKLOADS, TINY].find((x) => x.id === id);
  if (!w) throw new Error(`unknown workload ${id}; expected one of ${[...WORKLOADS, TINY].map((x) => x.id).join(", ")}`);
  return w;
};
/** @param {string} id */
export const op = (id) => {
  const o = OPS.find((x) => x.id === id);
  if (!o) throw new Error(`unknown op ${id}; expected one of ${OPS.map((x) => x.id).join(", ")}`);
  return o;
};

/**
 * @typedef {object} Inputs
 * @property {Float32Array} x
 * @property {Float32Array} dy
 * @property {Float32Array} weight
 * @property {Float32Array} bias
 * @property {Float32Array} runningMean  never mutated: implementations get copies
 * @property {Float32Array} runningVar
 * @property {Float32Array} mean    backward's input: the batch mean of x, rounded to float32
 * @property {Float32Array} invstd  backward's input: 1 / sqrt(var + eps), rounded to float32
 */

const inputCache = new Map();
const referenceCache = new Map();

/**
 * Seeded random normal data for a workload (the same on every run): x ~ N(0.5, 2^2), dy ~ N(0, 1),
 * weight ~ N(1, 0.2^2), bias ~ N(0, 0.2^2), running mean ~ N(0.5, 0.1^2), running var 1 + |N(0, 0.2^2)|.
 * @param {Workload} w
 * @returns {Inputs}
 */
export function inputs(w) {
  let d = inputCache.get(w.id);
  if (!d) {
    const length = lengthOf(w);
    const c = channelsOf(w);
    const seed = 1 + [...WORKLOADS, TINY].findIndex((x) => x.id === w.id) * 16;
    d = {
      x: randn(length, seed, 2, 0.5),
      dy: randn(length, seed + 1),
      weight: randn(c, seed + 2, 0.2, 1),
      bias: randn(c, seed + 3, 0.2, 0),
      runningMean: randn(c, seed + 4, 0.1, 0.5),
      runningVar: randn(c, seed + 5, 0.2, 0).map((v) => 1 + Math.abs(v)),
    };
    const train = reference(w, "train", d);
    d.mean = Float32Array.from(train.mean);
    d.invstd = Float32Array.from(train.invstd);
    inputCache.set(w.id, d);
  }
  return d;
}

/**
 * The float64 reference answer for `op` on `w` (computed once; the big arrays kept as float32,
 * which is exact enough for a 1e-4 tolerance). Backward uses the float32 mean/invstd of `inputs`.
 * @param {Workload} w
 * @param {'train' | 'infer' | 'backward'} opId
 */
export function reference(w, opId, d = inputs(w)) {
  const key = `${w.id}/${opId}`;
  let r = referenceCache.get(key);
  if (!r) {
    const base = { shape: w.shape, layout: w.layout, weight: d.weight, bias: d.bias, eps: EPS };
    if (opId === "backward") {
      const b = referenceBackward(d.dy, d.x, { ...base, training: true, mean: d.mean, invstd: d.invstd });
      r = { dx: Float32Array.from(b.dx), dweight: b.dweight, dbias: b.dbias };
    } else {
      const f = referenceForward(d.x, {
        ...base, training: opId === "train", momentum: MOMENTUM, runningMean: d.runningMean, runningVar: d.runningVar,
      });
      r = { y: Float32Array.from(f.y), mean: f.mean, invstd: f.invstd, variance: f.variance };
      if (opId === "train") {
        r.runningMean = f.runningMean;
        r.runningVar = f.runningVar;
        // ONNX's training mode updates running_var with the biased batch variance.
        r.runningVarBiased = Float64Array.from(d.runningVar, (v, k) => (1 - MOMENTUM) * v + MOMENTUM * f.variance[k]);
      }
    }
    referenceCache.set(key, r);
  }
  return r;
}

/** Drops a workload's cached data and reference answers. */
export function release(w) {
  inputCache.delete(w.id);
  for (const o of OPS) referenceCache.delete(`${w.id}/${o.id}`);
}

const REQUIRED = { train: "y", infer: "y", backward: "dx" };
const OPTIONAL = {
  train: ["mean", "invstd", "runningMean", "runningVar"],
  infer: [],
  backward: ["dweight", "dbias"],
};

/**
 * Checks an implementation's outputs against the reference.
 * @param {Workload} w
 * @param {'train' | 'infer' | 'backward'} opId
 * @param {Record<string, ArrayLike<number> | undefined>} got  y or dx, and any of the optional outputs
 * @param {{ runningVar?: 'unbiased' | 'biased' }} [semantics]  'biased': ONNX's running_var rule
 * @param {Record<string, ArrayLike<number>>} [ref]  the answer, when not reference(w, opId) (see reluReference)
 * @returns {{ ok: boolean, error: number, fields: Record<string, number>, message: string }}
 *   error: max over the checked arrays of max |got - ref| / max|ref|
 */
export function check(w, opId, got, semantics = {}, ref = reference(w, opId)) {
  const fields = {};
  const failures = [];
  let error = 0;
  const names = [REQUIRED[opId], ...OPTIONAL[opId]];
  for (const name of names) {
    const value = got?.[name];
    if (value === undefined || value === null) {
      if (name === REQUIRED[opId]) failures.push(`${name}: missing`);
      continue;
    }
    const expected = name === "runningVar" && semantics.runningVar === "biased" ? ref.runningVarBiased : ref[name];
    if (value.length !== expected.length) {
      failures.push(`${name}: length ${value.length}, expected ${expected.length}`);
      continue;
    }
    const scale = maxAbs(expected);
    const diff = maxAbsDiff(value, expected);
    const rel = diff / (scale || 1);
    fields[name] = rel;
    if (!(diff <= TOLERANCE.rel * scale + TOLERANCE.abs)) {
      failures.push(`${name}: max |diff| ${Number.isNaN(diff) ? "NaN" : diff.toExponential(2)} > tolerance ${(TOLERANCE.rel * scale + TOLERANCE.abs).toExponential(2)}`);
    }
    error = Math.max(error, rel); // NaN stays NaN
  }
  return { ok: failures.length === 0, error, fields, message: failures.join("; ") };
}

/**
 * The float64 reference through a fused ReLU (torch.relu(F.batch_norm(...))): forward, reference(w,
 * op) with y clipped at 0; backward, the gradients for dy zeroed where `forward.y`, the output of the
 * forward that gave `forward.mean` and `forward.invstd`, is <= 0 (so the reference clips exactly the
 * outputs the implementation's forward clipped; an output within rounding of 0 may fall either way).
 * @param {Workload} w
 * @param {'train' | 'infer' | 'backward'} opId
 * @param {{ y: Float32Array, mean: Float32Array, invstd: Float32Array }} [forward]  backward only
 */
export function reluReference(w, opId, forward) {
  const d = inputs(w);
  if (opId !== "backward") {
    const r = reference(w, opId, d);
    return { ...r, y: r.y.map((v) => (v < 0 ? 0 : v)) };
  }
  const dy = d.dy.map((v, i) => (forward.y[i] <= 0 ? 0 : v));
  const b = referenceBackward(dy, d.x, {
    shape: w.shape, layout: w.layout, weight: d.weight, eps: EPS, training: true, mean: forward.mean, invstd: forward.invstd,
  });
  return { dx: Float32Array.from(b.dx), dweight: b.dweight, dbias: b.dbias };
}
