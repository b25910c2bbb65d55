// State that survives JSON (issue 8 item 1, issue 7 item 11): the module's own JSON form round-trips
// exactly (options, parameters, running statistics, counter; float32 values as shortest decimals),
// stateDict() survives JSON.stringify/parse, PyTorch's state_dict dumped by the README's snippet loads
// and matches PyTorch, and RunningStats.fromJSON loads only states a real accumulator can hold.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import type { BatchNorm } from "../src/index.js";
import { BACKENDS, backend, checkBar, f32 } from "./helpers.js";
import { randn } from "./reference.js";

const fixture = (file: string) => JSON.parse(readFileSync(new URL(`./pytorch/${file}`, import.meta.url), "utf8"));

/** Element-wise Object.is equality (tells -0 from 0, and NaN equals NaN). */
function same(a: ArrayLike<number> | null, b: ArrayLike<number> | null): boolean {
  if (a === null || b === null) return a === b;
  return a.length === b.length && Array.from(a).every((v, i) => Object.is(v, b[i]));
}

function expectSameModule(a: BatchNorm, b: BatchNorm): void {
  for (const key of ["numFeatures", "eps", "momentum", "affine", "trackRunningStats", "layout", "numBatchesTracked", "training"] as const) {
    expect(b[key], key).toBe(a[key]);
  }
  for (const key of ["weight", "bias", "runningMean", "runningVar"] as const) expect(same(b[key], a[key]), key).toBe(true);
}

describe.each(BACKENDS)("JSON, %s backend", (name) => {
  it("JSON.stringify(layer) and BatchNorm.fromJSON round-trip exactly, for every kind of module", async () => {
    const bn = await backend(name);
    const configs = [
      {},
      { momentum: null, eps: 1e-3 },
      { affine: false },
      { trackRunningStats: false },
      { layout: "channels-last" as const, momentum: 0.25 },
      { affine: false, trackRunningStats: false },
    ];
    for (const [k, options] of configs.entries()) {
      const layer = new bn.BatchNorm(5, options);
      const shape = layer.layout === "channels-last" ? [6, 2, 5] : [6, 5, 2];
      for (let i = 0; i < 3; i++) layer.forward(randn(60, 10 * k + i, 3, i), shape);
      if (layer.weight) {
        layer.weight.set(randn(5, k + 100, 0.3, 1));
        layer.weight[0] = Math.fround(0.1);
        layer.bias![1] = -0; // survives as "-0"
        layer.bias![2] = 1e-45; // the smallest float32 subnormal
      }
      if (layer.runningVar) layer.runningVar[3] = NaN; // possible after NaN data
      const text = JSON.stringify(layer);
      for (const copy of [bn.BatchNorm.fromJSON(JSON.parse(text)), bn.BatchNorm.fromJSON(text)]) {
        expect(copy).toBeInstanceOf(bn.BatchNorm);
        expectSameModule(layer, copy);
        expect(JSON.stringify(copy)).toBe(text);
        const x = randn(60, k + 200, 2, 1);
        expect(Array.from(copy.eval().forward(x, shape))).toEqual(Array.from(layer.eval().forward(x, shape)));
        layer.train();
      }
      if (layer.weight) {
        expect(text).toContain('"weight":[0.1,'); // the shortest decimal, not 0.10000000149011612
        expect(text).toContain(',"-0",1e-45,');
      }
    }
  });

  it("a module whose tracking was switched off keeps its buffers and flag through JSON", async () => {
    const bn = await backend(name);
    const layer = new bn.BatchNorm(3);
    layer.forward(randn(12, 1, 2, 1), [4, 3]);
    layer.trackRunningStats = false;
    const copy = bn.BatchNorm.fromJSON(JSON.stringify(layer));
    expectSameModule(layer, copy);
    copy.forward(randn(12, 2), [4, 3]);
    expect(copy.numBatchesTracked).toBe(1);
    const untracked = new bn.BatchNorm(3, { trackRunningStats: false });
    untracked.trackRunningStats = true;
    const json = untracked.toJSON();
    expect(json.runningMean).toBeNull();
    expect(json.trackRunningStats).toBe(true);
    expectSameModule(untracked, bn.BatchNorm.fromJSON(json));
  });

  it("fromJSON rejects bad JSON with errors naming the field, and gives no module", async () => {
    const bn = await backend(name);
    const good = new bn.BatchNorm(2).toJSON();
    const bad: [unknown, RegExp, ErrorConstructor][] = [
      [null, /^json: expected an object, got null/, TypeError],
      ["{", /^json: /, SyntaxError],
      [{ ...good, momentun: 0.1 }, /^json\.momentun: unknown field \(did you mean 'momentum'\?\)/, TypeError],
      [{ ...good, eps: undefined }, /^json\.eps: missing/, TypeError],
      [(({ eps: _, ...rest }) => rest)(good), /^json\.eps: missing/, TypeError],
      [{ ...good, numFeatures: 0 }, /^json\.numFeatures: expected a positive integer, got 0/, RangeError],
      [{ ...good, eps: -1 }, /^json\.eps: expected a finite number > 0, got -1/, RangeError],
      [{ ...good, momentum: 2 }, /^json\.momentum: /, RangeError],
      [{ ...good, affine: "yes" }, /^json\.affine: expected a boolean, got "yes"/, TypeError],
      [{ ...good, trackRunningStats: 1 }, /^json\.trackRunningStats: expected a boolean/, TypeError],
      [{ ...good, layout: "NHWC" }, /^json\.layout: expected 'channels-first' or 'channels-last'/, TypeError],
      [{ ...good, weight: [1] }, /^json\.weight: expected length 2, got 1/, RangeError],
      [{ ...good, bias: { 0: 1, 1: 2 } }, /^json\.bias: expected a Float32Array or an array of 2 numbers, got Object/, TypeError],
      [{ ...good, runningVar: [1, "one"] }, /^json\.runningVar\[1\]: expected a number/, TypeError],
      [{ ...good, affine: false }, /^json\.weight: expected null \(affine is false\)/, TypeError],
      [{ ...good, runningMean: null }, /^json\.runningMean: expected a Float32Array or an array of 2 numbers, got null/, TypeError],
      [{ ...good, numBatchesTracked: -1 }, /^json\.numBatchesTracked: expected a non-negative integer, got -1/, TypeError],
      [{ ...good, numBatchesTracked: 1.5 }, /^json\.numBatchesTracked: /, TypeError],
    ];
    for (const [json, message, type] of bad) {
      const call = () => bn.BatchNorm.fromJSON(json as never);
      expect(call, String(message)).toThrow(type);
      expect(call, String(message)).toThrow(message);
    }
  });

  it("stateDict() survives JSON: loadStateDict(JSON.parse(JSON.stringify(layer.stateDict()))) restores it exactly", async () => {
    const bn = await backend(name);
    const layer = new bn.BatchNorm(4, { momentum: null });
    for (let i = 0; i < 3; i++) layer.forward(randn(32, i, 2, i), [8, 4]);
    layer.weight!.set(randn(4, 9, 0.5, 1));
    layer.bias![0] = -0;
    layer.runningMean![1] = Infinity;
    const sd = layer.stateDict();
    expect(Object.keys(sd)).toEqual(["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]);
    const text = JSON.stringify(sd);
    expect(text.startsWith('{"weight":[')).toBe(true);
    const copy = new bn.BatchNorm(4, { momentum: null });
    copy.loadStateDict(JSON.parse(text));
    expectSameModule(layer, copy);
    // plain number arrays and a mixture with Float32Arrays load too
    const other = new bn.BatchNorm(4);
    other.loadStateDict({ ...sd, weight: [1, 2, 3, 4], num_batches_tracked: 2 });
    expect(Array.from(other.weight!)).toEqual([1, 2, 3, 4]);
    const before = JSON.stringify(other.stateDict());
    expect(() => other.loadStateDict({ ...sd, bias: [1, 2, 3, null] as never })).toThrow(/^stateDict\.bias\[3\]: expected a number/);
    expect(() => other.loadStateDict({ ...sd, runing_mean: sd.running_mean } as never)).toThrow(/^stateDict: unexpected key 'runing_mean' \(did you mean 'running_mean'\?\)/);
    expect(JSON.stringify(other.stateDict())).toBe(before);
  });

  it("loads PyTorch's state_dict as the README's snippet dumps it, and then matches PyTorch", async () => {
    const bn = await backend(name);
    const layers = fixture("bn_layers.json");
    const evals = fixture("bn_layers_eval.json");
    expect(Object.keys(layers).length).toBe(2);
    for (const [key, sd] of Object.entries(layers) as [string, { weight: number[] }][]) {
      const layer = new bn.BatchNorm(sd.weight.length, key === "4" ? { momentum: null } : {});
      layer.loadStateDict(sd);
      expect(layer.numBatchesTracked).toBe(6);
      expect(Array.from(layer.runningVar!)).toEqual(Array.from(f32((sd as Record<string, number[]>).running_var)));
      const c = evals[key];
      const y = layer.eval().forward(f32(c.x), c.shape);
      expect(checkBar(`layer ${key}: y`, y, c.y_f64, c.torch_f32_max_abs_err)).toBeNull();
    }
  });

  it("RunningStats: JSON round trip, also with NaN and Infinity after such data", async () => {
    const bn = await backend(name);
    const x = randn(4 * 3 * 5, 3, 2, 1);
    x[7] = NaN; // channel 1 (channels-first [4, 3, 5]: index 7 is image 0, channel 1)
    x[20] = Infinity; // channel 1 of image 1
    const s = new bn.RunningStats(3).update(x, { shape: [4, 3, 5] });
    expect(Number.isNaN(s.mean[1])).toBe(true);
    const text = JSON.stringify(s);
    expect(text).toContain('"NaN"');
    for (const copy of [bn.RunningStats.fromJSON(JSON.parse(text)), bn.RunningStats.fromJSON(text)]) {
      expect(copy.count).toBe(s.count);
      expect(same(copy.mean, s.mean)).toBe(true);
      expect(same(copy.variance(), s.variance())).toBe(true);
    }
  });

  it("RunningStats.fromJSON rejects states no accumulator can hold, naming the field", async () => {
    const bn = await backend(name);
    const ok = { numFeatures: 2, count: 3, mean: [1, 2], m2: [0.5, 0] };
    expect(bn.RunningStats.fromJSON(ok).count).toBe(3);
    expect(bn.RunningStats.fromJSON({ numFeatures: 2, count: 0, mean: [0, 0], m2: [0, 0] }).count).toBe(0);
    expect(bn.RunningStats.fromJSON({ ...ok, mean: ["NaN", 2], m2: [NaN, "Infinity"] }).count).toBe(3); // NaN data happens
    const bad: [unknown, RegExp, ErrorConstructor][] = [
      [{ ...ok, count: 1.5 }, /^json\.count: expected a non-negative integer, got 1.5/, RangeError],
      [{ ...ok, count: Infinity }, /^json\.count: /, RangeError],
      [{ ...ok, count: NaN }, /^json\.count: /, RangeError],
      [{ ...ok, count: -1 }, /^json\.count: /, RangeError],
      [{ ...ok, count: "3" }, /^json\.count: expected a non-negative integer, got "3"/, TypeError],
      [{ ...ok, m2: [0.5, -1e-9] }, /^json\.m2\[1\]: expected >= 0 \(a sum of squares\), got -1e-9/, RangeError],
      [{ ...ok, count: 0 }, /^json\.mean\[0\]: expected 0 with count 0 \(nothing seen\), got 1/, RangeError],
      [{ ...ok, count: 0, mean: [0, 0] }, /^json\.m2\[0\]: expected 0 with count 0/, RangeError],
      [{ ...ok, count: 0, mean: [0, NaN], m2: [0, 0] }, /^json\.mean\[1\]: expected 0 with count 0/, RangeError],
      [{ ...ok, mean: [1] }, /^json\.mean: expected length 2, got 1/, RangeError],
      [{ ...ok, m2: [0, "x"] }, /^json\.m2\[1\]: expected a number/, TypeError],
      [{ ...ok, numFeatures: 1.5 }, /^json\.numFeatures: expected a positive integer/, RangeError],
      [{ ...ok, extra: 1 }, /^json\.extra: unknown field/, TypeError],
    ];
    for (const [json, message, type] of bad) {
      const call = () => bn.RunningStats.fromJSON(json as never);
      expect(call, String(message)).toThrow(type);
      expect(call, String(message)).toThrow(message);
    }
  });
});
