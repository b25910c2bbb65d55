// RunningStats: exact per-channel population statistics over any number of batches (a whole data
// set), with float64 state (count, mean, M2) merged by Chan et al.'s parallel formula (chan-merge.ts).
import { chanMerge } from "./chan-merge.js";
import { Engine, Steps } from "./engine.js";
import { Layout, Tensor, checkBoolean, checkLayout, checkTensor, describe, geometry } from "./validate.js";

export interface RunningStatsJSON {
  numFeatures: number;
  count: number;
  mean: number[];
  m2: number[];
}

export class RunningStats {
  readonly numFeatures: number;
  /** Values seen per channel. */
  count = 0;
  private readonly meanState: Float64Array;
  private readonly m2State: Float64Array;
  private readonly engine: Engine;

  constructor(engine: Engine, numFeatures: number) {
    if (!Number.isSafeInteger(numFeatures) || numFeatures < 1) {
      throw new RangeError(`numFeatures: expected a positive integer, got ${describe(numFeatures)}`);
    }
    this.engine = engine;
    this.numFeatures = numFeatures;
    this.meanState = new Float64Array(numFeatures);
    this.m2State = new Float64Array(numFeatures);
  }

  /** Per-channel mean of everything seen (a copy). */
  get mean(): Float64Array {
    return this.meanState.slice();
  }

  /** Per-channel variance: population (biased, as BN normalizes with) or, with `unbiased`, sample. */
  variance(options: { unbiased?: boolean } = {}): Float64Array {
    const unbiased = checkBoolean("unbiased", options?.unbiased, false);
    const d = unbiased ? this.count - 1 : this.count;
    return this.m2State.map((m2) => (d > 0 ? m2 / d : NaN));
  }

  /** Adds a batch (shape in memory order). */
  update(x: Tensor, options: { shape: readonly number[]; layout?: Layout }): this {
    return this.engine.run("update", this.updateSteps(x, options));
  }

  /** update on the worker pool: resolves with this accumulator when the batch is added, never blocking the caller. */
  updateAsync(x: Tensor, options: { shape: readonly number[]; layout?: Layout }): Promise<this> {
    return this.engine.runAsync(() => this.updateSteps(x, options));
  }

  private *updateSteps(x: Tensor, options: { shape: readonly number[]; layout?: Layout }): Steps<this> {
    checkTensor("x", x, this.engine.memory);
    if (options === null || typeof options !== "object") throw new TypeError(`options: expected an object, got ${describe(options)}`);
    const g = geometry(options.shape, checkLayout(options.layout), x.length);
    if (g.c !== this.numFeatures) {
      throw new RangeError(`x: expected ${this.numFeatures} channels (numFeatures), got ${g.c} in shape [${g.shape.join(", ")}]`);
    }
    if (g.count === 0) return this;
    const engine = this.engine;
    const sc = engine.scratch(g.c);
    yield* engine.batchStats(engine.operand(x), g, sc, true);
    const m2 = engine.f64(sc.variance, g.c).map((v) => v * g.count);
    this.mergeState(g.count, engine.f64(sc.mean, g.c), m2);
    return this;
  }

  /** Adds everything `other` has seen. */
  merge(other: RunningStats): this {
    if (!(other instanceof RunningStats)) throw new TypeError(`other: expected a RunningStats, got ${describe(other)}`);
    if (other.numFeatures !== this.numFeatures) {
      throw new RangeError(`other: expected ${this.numFeatures} features, got ${other.numFeatures}`);
    }
    this.mergeState(other.count, other.meanState, other.m2State);
    return this;
  }

  toJSON(): RunningStatsJSON {
    return { numFeatures: this.numFeatures, count: this.count, mean: Array.from(this.meanState), m2: Array.from(this.m2State) };
  }

  /** @internal restores state checked by the backend's fromJSON */
  load(json: RunningStatsJSON): this {
    this.count = json.count;
    this.meanState.set(json.mean);
    this.m2State.set(json.m2);
    return this;
  }

  static validateJSON(json: unknown): RunningStatsJSON {
    const j = json as RunningStatsJSON;
    if (j === null || typeof j !== "object") throw new TypeError(`json: expected an object, got ${describe(json)}`);
    if (!Number.isSafeInteger(j.numFeatures) || j.numFeatures < 1) {
      throw new RangeError(`json.numFeatures: expected a positive integer, got ${describe(j.numFeatures)}`);
    }
    if (typeof j.count !== "number" || !(j.count >= 0)) throw new RangeError(`json.count: expected a number >= 0, got ${describe(j.count)}`);
    for (const key of ["mean", "m2"] as const) {
      const a = j[key];
      if (!Array.isArray(a) || a.length !== j.numFeatures || !a.every((v) => typeof v === "number")) {
        throw new TypeError(`json.${key}: expected ${j.numFeatures} numbers, got ${describe(a)}`);
      }
    }
    return j;
  }

  private mergeState(nb: number, meanB: ArrayLike<number>, m2B: ArrayLike<number>): void {
    if (nb === 0) return;
    for (let i = 0; i < this.numFeatures; i++) chanMerge(this.meanState, this.m2State, i, this.count, nb, meanB[i], m2B[i]);
    this.count += nb;
  }
}
