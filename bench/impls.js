// The implementations bench/run.mjs measures, as harness Impls (see bench/harness.js): the two
// pure-JS baselines, this library's backends through both APIs (at any thread count, sync or async),
// and the memory-bandwidth yardstick. bench/peers/run.mjs reuses the library ones and the yardstick.
import { naive, tuned } from "./js-baselines.js";
import { EPS, MOMENTUM, inputs, lengthOf } from "./workloads.js";

const OPS = ["train", "infer", "backward"];
const always = (w, op) => (OPS.includes(op) ? true : `no ${op}`);

/**
 * Options for a forward call on workload `w`, op 'train' or 'infer', with fresh running statistics.
 * @param {import('./workloads.js').Workload} w
 */
function forwardOptions(w, op, d, extra) {
  return {
    shape: w.shape,
    layout: w.layout,
    weight: d.weight,
    bias: d.bias,
    runningMean: d.runningMean.slice(),
    runningVar: d.runningVar.slice(),
    training: op === "train",
    momentum: MOMENTUM,
    eps: EPS,
    ...extra,
  };
}

/** A pure-JS baseline (naive or tuned) as an Impl; outputs go to a preallocated Float32Array. */
function jsImpl(id, label, short, impl, color, note) {
  return {
    id,
    label,
    short,
    group: "js",
    pristine: true,
    color,
    note,
    supports: always,
    prepare: copyingPrepare(impl),
  };
}

/**
 * A call of `fn` that hands its result to `keep`: sync, or (async) awaiting the promise `fn` returns.
 * @param {() => unknown} fn
 * @param {(result: any) => unknown} keep
 */
const keeping = (fn, keep, async = false) => (async ? async () => keep(await fn()) : () => keep(fn()));

/**
 * The library's two calls on `bn`: the sync ones, or with `async` the async API
 * (bn.batchNormAsync, bn.batchNormBackwardAsync) under the same names, so every setup below serves both.
 * @param {import('../dist/index.js').Backend} bn
 */
function calls(bn, async) {
  if (!async) return bn;
  return { batchNorm: (x, o) => bn.batchNormAsync(x, o), batchNormBackward: (dy, x, o) => bn.batchNormBackwardAsync(dy, x, o) };
}

/**
 * `prepare` for anything with the library's copying API (batchNorm / batchNormBackward on plain
 * Float32Arrays, results into a preallocated `out`): the JS baselines and the library itself
 * (`async`: the calls return promises).
 */
function copyingPrepare(api, async = false) {
  return (w, op) => {
    const d = inputs(w);
    const out = new Float32Array(lengthOf(w));
    let last;
    const keep = (r) => (last = r);
    if (op === "backward") {
      const o = { shape: w.shape, layout: w.layout, weight: d.weight, training: true, mean: d.mean, invstd: d.invstd, eps: EPS, out };
      return { run: keeping(() => api.batchNormBackward(d.dy, d.x, o), keep, async), outputs: () => last };
    }
    const o = forwardOptions(w, op, d, { out });
    return {
      run: keeping(() => api.batchNorm(d.x, o), keep, async),
      outputs: () => ({ ...last, runningMean: op === "train" ? o.runningMean : undefined, runningVar: op === "train" ? o.runningVar : undefined }),
    };
  };
}

/**
 * The id, label and support test of a library Impl on `bn`: `simd-zero`, `simd-copy-t2`,
 * `simd-zero-t2-async`, ... (the thread count is the one `bn` really uses; 1 has no suffix).
 * @param {import('../dist/index.js').Backend} bn
 * @param {'copy' | 'zero'} api
 */
function libraryImpl(bn, api, { color, async = false } = {}) {
  const t = bn.threads;
  const threads = t > 1 ? `, ${t} threads` : "";
  const kind = api === "copy" ? "copying" : "zero-copy";
  const missing = async && typeof bn.batchNormAsync !== "function" ? "this build has no async API (bn.batchNormAsync)" : null;
  return {
    id: `${bn.backend}-${api}${t > 1 ? `-t${t}` : ""}${async ? "-async" : ""}`,
    label: `wasm-batchnorm ${bn.backend}, ${kind} API${async ? " (async)" : ""}${threads}`,
    short: `${bn.backend} ${kind}${async ? " async" : ""}${t > 1 ? ` ×${t}` : ""}`,
    group: "wasm-batchnorm",
    color,
    threads: t,
    async,
    supports: (w, op) => missing ?? always(w, op),
  };
}

export const jsNaive = jsImpl(
  "js-naive",
  "JS straightforward",
  "JS naive",
  naive,
  "#bdbdbd",
  "bench/js-baselines.js naive: per-channel loops (mean, variance, then y with / and sqrt inline), strided by channel",
);
export const jsTuned = jsImpl(
  "js-tuned",
  "JS tuned",
  "JS tuned",
  tuned,
  "#616161",
  "bench/js-baselines.js tuned: one-pass shifted statistics in memory order, per-channel scale/shift, tight loops",
);

/**
 * This library through its copying API: plain Float32Arrays in, `out` a preallocated Float32Array
 * (so each call copies x (and dy) into wasm memory and y (dx) back out, but allocates no JS array).
 * @param {import('../dist/index.js').Backend} bn
 * @param {string} [color]
 * @param {{ async?: boolean }} [o]  async: through bn.batchNormAsync / bn.batchNormBackwardAsync
 */
export function copyingImpl(bn, color, { async = false } = {}) {
  return {
    ...libraryImpl(bn, "copy", { color, async }),
    note: `bn.batchNorm${async ? "Async" : ""}(Float32Array, { ..., out: Float32Array }): copies the tensor in and the result out on every call`,
    prepare: copyingPrepare(calls(bn, async), async),
  };
}

/**
 * Tensors for the zero-copy API on workload `w`: x (and dy), the output, and the per-channel
 * arrays, all WasmTensors of `bn`; `call()` runs the op once (with `async`, through the async API:
 * `call()` returns a promise). Also used by the overhead, memory, threads and fused-ReLU measurements
 * in bench/run.mjs. `activation: 'relu'`: through a fused ReLU (backward also passes the bias);
 * `stats`: backward's mean and invstd, those a forward returned, instead of the workload's.
 * @param {import('../dist/index.js').Backend} bn
 */
export function zeroCopySetup(bn, w, op, d = inputs(w), { async = false, activation = "none", stats = null } = {}) {
  const api = calls(bn, async);
  const list = [];
  const wasm = (values) => {
    const t = bn.alloc(values.length);
    t.data.set(values);
    list.push(t);
    return t;
  };
  /** @type {Record<string, import('../dist/index.js').WasmTensor>} */
  const t = { x: wasm(d.x), out: wasm(new Float32Array(lengthOf(w))), weight: wasm(d.weight) };
  let call;
  let outputs;
  let options;
  let last;
  const keep = (r) => (last = r);
  if (op === "backward") {
    t.dy = wasm(d.dy);
    t.mean = wasm(d.mean);
    t.invstd = wasm(d.invstd);
    options = { shape: w.shape, layout: w.layout, weight: t.weight, training: true, mean: t.mean, invstd: t.invstd, eps: EPS, out: t.out };
    // the very arrays a forward returned (they carry its float64 values)
    if (stats) Object.assign(options, { mean: stats.mean, invstd: stats.invstd });
    if (activation !== "none") Object.assign(options, { bias: (t.bias = wasm(d.bias)), activation });
    call = keeping(() => api.batchNormBackward(t.dy, t.x, options), keep, async);
    outputs = () => ({ dx: t.out.data, dweight: last.dweight, dbias: last.dbias });
  } else {
    t.bias = wasm(d.bias);
    t.runningMean = wasm(d.runningMean);
    t.runningVar = wasm(d.runningVar);
    options = {
      shape: w.shape, layout: w.layout, weight: t.weight, bias: t.bias, runningMean: t.runningMean, runningVar: t.runningVar,
      training: op === "train", momentum: MOMENTUM, eps: EPS, out: t.out, activation,
    };
    call = keeping(() => api.batchNorm(t.x, options), keep, async);
    outputs = () => ({
      y: t.out.data,
      mean: last.mean,
      invstd: last.invstd,
      runningMean: op === "train" ? t.runningMean.data : undefined,
      runningVar: op === "train" ? t.runningVar.data : undefined,
    });
  }
  return { call, outputs, options, tensors: t, free: () => list.forEach((x) => x.free()) };
}

/**
 * This library through its zero-copy API: x, dy, out and the per-channel arrays are WasmTensors.
 * @param {import('../dist/index.js').Backend} bn
 * @param {string} [color]
 * @param {{ async?: boolean }} [o]  async: through bn.batchNormAsync / bn.batchNormBackwardAsync
 */
export function zeroCopyImpl(bn, color, { async = false } = {}) {
  return {
    ...libraryImpl(bn, "zero", { color, async }),
    note: `bn.batchNorm${async ? "Async" : ""}(WasmTensor, { ..., out: WasmTensor }), per-channel arrays also WasmTensors: no tensor-sized copy`,
    prepare(w, op) {
      const z = zeroCopySetup(bn, w, op, undefined, { async });
      return { run: z.call, outputs: z.outputs, dispose: z.free };
    },
  };
}

/**
 * The memory-bandwidth yardstick: dst.set(src) between two WasmTensor views of the tensor's size
 * (one read pass and one write pass), measured per workload in the same run.
 * @param {import('../dist/index.js').Backend} bn
 */
export function copyYardstick(bn) {
  return {
    id: "copy",
    label: "copy (bandwidth yardstick)",
    short: "copy",
    group: "yardstick",
    color: "#000",
    note: "dst.set(src) between two WasmTensor data views of the tensor's size: one read + one write pass",
    supports: (w, op) => (op === "copy" ? true : "yardstick"),
    prepare(w) {
      const d = inputs(w);
      const src = bn.alloc(d.x.length);
      const dst = bn.alloc(d.x.length);
      src.data.set(d.x);
      const s = src.data;
      const t = dst.data;
      return {
        run: () => t.set(s),
        outputs: () => ({ x: d.x, y: dst.data }),
        dispose: () => {
          src.free();
          dst.free();
        },
      };
    },
  };
}
