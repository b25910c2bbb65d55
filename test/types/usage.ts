// Compiled by test/types.test.ts with `tsc --noEmit` under strict settings and minimal libs
// (ES2022 only, no DOM, no @types, skipLibCheck false) against the built dist/*.d.ts, imported by the
// package's name as a user would. Positive cases must compile; each `@ts-expect-error` line must be
// an error (an unused one is itself an error), so the types reject what the runtime rejects.
import {
  init, WasmTensor, type Backend, type BatchNormJSON, type BatchNormOptions, type BatchNormStateDict,
  type BatchNormStateDictInput, type JsonFloat, type Layout, type RunningStatsJSON, type Tensor,
} from "wasm-batchnorm";

const bn: Backend = await init();
const scalar: Backend = await init({ backend: "scalar", threads: 1 });
const threads: number = bn.threads;
const shape = [2, 3, 4];
const x = new Float32Array(24);
const layout: Layout = "channels-first";

// the functional API
const options: BatchNormOptions = { shape, layout, momentum: 0.1, eps: 1e-5, training: true, out: null };
const { y, mean, invstd } = bn.batchNorm(x, options);
const grads = bn.batchNormBackward(y, x, { shape, mean, invstd, weight: new Float32Array(3) });
const dweight: Float32Array = grads.dweight;
const t: WasmTensor = bn.alloc(24);
const input: Tensor = t;
bn.batchNorm(input, { shape, out: t.data, runningMean: bn.alloc(3), runningVar: bn.alloc(3).data });
const stats = bn.memoryStats();
const largest: number = stats.largestFree + stats.inUse + stats.bytes + stats.allocations + scalar.memoryBytes;
t.free();
const later: Promise<void> = bn.batchNormAsync(x, options).then(async (r) => {
  await bn.batchNormBackwardAsync(r.y, x, { shape, mean: r.mean, invstd: r.invstd });
});

// the module
const layer = new bn.BatchNorm(3, { momentum: null, affine: true, trackRunningStats: true, layout: "channels-last" });
layer.trackRunningStats = false;
const tracking: boolean = layer.trackRunningStats;
const out: Float32Array = layer.forward(x, [2, 4, 3]);
const dx: Float32Array = layer.backward(out);
const weightGrad: Float32Array | null = layer.weightGrad;
layer.zeroGrad();
const sd: BatchNormStateDict = layer.stateDict();
const w: Float32Array | undefined = sd.weight;
layer.loadStateDict(sd);
layer.loadStateDict({ weight: [1, 2, 3], bias: [0, "-0", 0], running_mean: [0, 0, 0], running_var: new Float32Array(3).fill(1) });
const fromJSON: BatchNormStateDictInput = JSON.parse(JSON.stringify(sd));
layer.loadStateDict(fromJSON);
const json: BatchNormJSON = layer.toJSON();
const nan: JsonFloat = "NaN";
const copy = bn.BatchNorm.fromJSON(json);
bn.BatchNorm.fromJSON(JSON.stringify(layer)).eval().train(true).dispose();
const forwarded: Promise<Float32Array> = layer.forwardAsync(x, [2, 4, 3]).then((y) => layer.backwardAsync(y));

// RunningStats
const running = new bn.RunningStats(3).update(x, { shape: [8, 3], layout: "channels-last" });
const variance: Float64Array = running.variance({ unbiased: true });
const saved: RunningStatsJSON = running.toJSON();
bn.RunningStats.fromJSON(saved).merge(bn.RunningStats.fromJSON(JSON.stringify(running)));
const updated: Promise<unknown> = running.updateAsync(x, { shape: [8, 3] });

// what the types must reject
// @ts-expect-error a misspelt option
bn.batchNorm(x, { shape, momentun: 0.5 });
// @ts-expect-error shape is required
bn.batchNorm(x, { layout });
// @ts-expect-error a plain array is not a Float32Array (use Float32Array.from)
bn.batchNorm([1, 2, 3], { shape });
// @ts-expect-error a Float64Array neither
bn.batchNorm(new Float64Array(24), { shape });
// @ts-expect-error not a layout
bn.batchNorm(x, { shape, layout: "NHWC" });
// @ts-expect-error momentum null is the module's cumulative average; the functional API takes a number
bn.batchNorm(x, { shape, momentum: null });
// @ts-expect-error not a backend
void init({ backend: "gpu" });
// @ts-expect-error threads is a number or 'auto'
void init({ threads: "many" });
// @ts-expect-error a misspelt module option
new bn.BatchNorm(3, { trackRunningStat: false });
// @ts-expect-error trackRunningStats is a boolean
layer.trackRunningStats = 1;
// @ts-expect-error numFeatures is read-only
layer.numFeatures = 4;
// @ts-expect-error not per-channel values
layer.loadStateDict({ weight: "1,2,3" });
// @ts-expect-error not a JSON float
layer.loadStateDict({ weight: [1, "one", 3] });
// @ts-expect-error a misspelt variance option
running.variance({ unbiassed: true });
// @ts-expect-error RunningStats.update needs a shape
running.update(x, {});

export { copy, dweight, dx, forwarded, largest, later, nan, threads, tracking, updated, variance, w, weightGrad };
