// Unknown option names are TypeErrors naming the option and the closest known name (issue 8 item 3),
// for every options object; a plain Array or another typed array where a Float32Array is needed says
// how to convert it. Nothing changes when a call throws.
import { describe, expect, it } from "vitest";
import { init } from "../src/index.js";
import { BACKENDS, backend } from "./helpers.js";
import { randn } from "./reference.js";

describe.each(BACKENDS)("option names, %s backend", (name) => {
  it("a misspelt option names itself and the closest known name, in every options object", async () => {
    const bn = await backend(name);
    const x = randn(24, 1);
    const shape = [4, 3, 2];
    const runningMean = new Float32Array(3);
    const runningVar = new Float32Array(3).fill(1);
    const { mean, invstd } = bn.batchNorm(x, { shape });
    const stats = new bn.RunningStats(3);
    const layer = new bn.BatchNorm(3);
    const cases: [() => unknown, RegExp][] = [
      [() => bn.batchNorm(x, { shape, runningMean, runningVar, momentun: 0.5 } as never), /^momentun: unknown option \(did you mean 'momentum'\?\)$/],
      [() => bn.batchNorm(x, { shape, running_mean: runningMean } as never), /^running_mean: unknown option \(did you mean 'runningMean'\?\)$/],
      [() => bn.batchNorm(x, { shape, epsilon: 1e-3 } as never), /^epsilon: unknown option \(did you mean 'eps'\?\)$/],
      [() => bn.batchNorm(x, { shape, Training: false } as never), /^Training: unknown option \(did you mean 'training'\?\)$/],
      [() => bn.batchNorm(x, { shape, wieght: runningVar } as never), /^wieght: unknown option \(did you mean 'weight'\?\)$/],
      [() => bn.batchNorm(x, { shape, lr: 0.1 } as never), /^lr: unknown option \(expected one of shape, layout, weight, bias, runningMean, runningVar, training, momentum, runningVariance, eps, activation, out, virtualBatchSize, statistics\)$/],
      [() => bn.batchNormBackward(x, x, { shape, mean, invstd, invstdd: invstd } as never), /^invstdd: unknown option \(did you mean 'invstd'\?\)$/],
      [() => bn.batchNormBackward(x, x, { shape, mean, invstd, momentum: 0.1 } as never), /^momentum: unknown option \(expected one of /],
      [() => new bn.BatchNorm(3, { trackRunningStat: false } as never), /^trackRunningStat: unknown option \(did you mean 'trackRunningStats'\?\)$/],
      [() => new bn.BatchNorm(3, { track_running_stats: false } as never), /^track_running_stats: unknown option \(did you mean 'trackRunningStats'\?\)$/],
      [() => new bn.BatchNorm(3, { num_features: 3 } as never), /^num_features: unknown option \(expected one of eps, momentum, affine, scale, center, runningVariance, trackRunningStats, layout, virtualBatchSize, renorm, activation\)$/],
      [() => stats.update(x, { shape, layuot: "channels-last" } as never), /^layuot: unknown option \(did you mean 'layout'\?\)$/],
      [() => stats.variance({ unbiassed: true } as never), /^unbiassed: unknown option \(did you mean 'unbiased'\?\)$/],
    ];
    for (const [call, message] of cases) {
      expect(call).toThrow(TypeError);
      expect(call).toThrow(message);
    }
    expect(Array.from(runningMean)).toEqual([0, 0, 0]);
    expect(stats.count).toBe(0);
    expect(layer.numBatchesTracked).toBe(0);
    // a key whose value is undefined is still a typo; inherited keys are not options
    expect(() => bn.batchNorm(x, { shape, biass: undefined } as never)).toThrow(/^biass: unknown option \(did you mean 'bias'\?\)/);
    expect(bn.batchNorm(x, Object.assign(Object.create({ inherited: 1 }), { shape })).y.length).toBe(24);
  });

  it("init rejects an unknown option", async () => {
    await expect(init({ backnd: name } as never)).rejects.toThrow(/^backnd: unknown option \(did you mean 'backend'\?\)$/);
    await expect(init({ backend: name, simd: false } as never)).rejects.toThrow(TypeError);
  });

  it("an Array or another typed array where a Float32Array is needed says how to convert it", async () => {
    const bn = await backend(name);
    const x = randn(24, 2);
    const shape = [4, 3, 2];
    expect(() => bn.batchNorm(Array.from(x) as never, { shape })).toThrow(/^x: expected a Float32Array or WasmTensor, got Array\(24\); use Float32Array\.from\(x\)$/);
    expect(() => bn.batchNorm(Float64Array.from(x) as never, { shape })).toThrow(/^x: .*got Float64Array\(24\); use Float32Array\.from\(x\)$/);
    expect(() => bn.batchNorm(x, { shape, weight: [1, 2, 3] as never })).toThrow(/^weight: .*got Array\(3\); use Float32Array\.from\(weight\)$/);
    expect(() => bn.batchNormBackward(Array.from(x) as never, x, { shape })).toThrow(/; use Float32Array\.from\(dy\)$/);
    expect(() => bn.batchNorm(x, { shape, out: new Int32Array(24) as never })).toThrow(/^out: .*got Int32Array\(24\); use Float32Array\.from\(out\)$/);
    expect(() => bn.batchNorm(x, { shape, weight: "1,2,3" as never })).toThrow(/^weight: expected a Float32Array or WasmTensor, got "1,2,3"$/);
    const layer = new bn.BatchNorm(3);
    layer.weight = [1, 2, 3] as never;
    expect(() => layer.forward(x, shape)).toThrow(/^weight: expected a Float32Array, got Array\(3\); use Float32Array\.from\(weight\)$/);
    expect(() => new bn.RunningStats(3).update(Float64Array.from(x) as never, { shape })).toThrow(/use Float32Array\.from\(x\)$/);
  });
});
