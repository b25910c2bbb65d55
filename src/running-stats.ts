// RunningStats: exact per-channel population statistics over any number of batches (a whole data
// set), with float64 state (count, mean, M2) merged by Chan et al.'s parallel formula (chan-merge.ts).
import { chanMerge } from "./chan-merge.js";
import { Engine, Statistics, Steps } from "./engine.js";
import { JsonFloat, f64ToJSON, floatsFromJSON, parseJSON } from "./json.js";
import { Layout, Tensor, checkBoolean, checkKeys, checkLayout, checkNumFeatures, checkTensor, describe, geometry } from "./validate.js";

/**
 * The JSON form of a RunningStats (`JSON.stringify(stats)`; `bn.RunningStats.fromJSON`): float64
 * state written exactly, with NaN and +-Infinity (possible after such data) as strings.
 */
export interface RunningStatsJSON {
  /** Channels, 1 to 2^24. */
  numFeatures: number;
  /** Values seen per channel: a non-negative integer. */
  count: number;
  /** Per-channel mean (all 0 when count is 0). */
  mean: JsonFloat[];
  /** Per-channel sum of squared deviations from the mean: >= 0 or NaN (all 0 when count is 0). */
  m2: JsonFloat[];
}

/** Options of {@link RunningStats.update}. */
export interface RunningStatsUpdateOptions {
  /** Shape in memory order: `[N, C, ...spatial]` (channels-first) or `[N, ...spatial, C]`, with C = numFeatures. */
  shape: readonly number[];
  /** Default `'channels-first'`. */
  layout?: Layout;
}

/** Options of {@link RunningStats.variance}. */
export interface VarianceOptions {
  /** Divide by count - 1 (the sample variance) instead of count (the population variance). Default `false`. */
  unbiased?: boolean;
}

const UPDATE_OPTIONS: ReadonlySet<string> = new Set(["shape", "layout"]);
const VARIANCE_OPTIONS: ReadonlySet<string> = new Set(["unbiased"]);
const JSON_FIELDS: ReadonlySet<string> = new Set(["numFeatures", "count", "mean", "m2"]);

/**
 * Exact per-channel mean and variance of everything passed to `update` (a whole data set, batch by
 * batch), in float64; `merge` combines two (e.g. from workers) by Chan et al.'s parallel formula.
 * Create it with `new bn.RunningStats(numFeatures)` on a loaded backend.
 *
 * @example
 * const stats = new bn.RunningStats(3);
 * for (const batch of batches) stats.update(batch, { shape: [batch.length / 3, 3] });
 * console.log(stats.count, stats.mean, stats.variance());
 */
export class RunningStats {
  /** Channels (C), 1 to 2^24. */
  readonly numFeatures: number;
  /** Values seen per channel. */
  count = 0;
  private readonly meanState: Float64Array;
  private readonly m2State: Float64Array;
  private readonly engine: Engine;

  /** @internal use `new bn.RunningStats(numFeatures)` */
  constructor(engine: Engine, numFeatures: number) {
    checkNumFeatures("numFeatures", numFeatures);
    this.engine = engine;
    this.numFeatures = numFeatures;
    this.meanState = new Float64Array(numFeatures);
    this.m2State = new Float64Array(numFeatures);
  }

  /** Per-channel mean of everything seen (a copy; 0 before any value). */
  get mean(): Float64Array {
    return this.meanState.slice();
  }

  /**
   * Per-channel variance: population (biased, as BN normalizes with) or, with `unbiased`, sample.
   * NaN where there are too few values (none, or one for the sample variance).
   * @throws {TypeError} for an unknown option or a non-boolean `unbiased`.
   * @example stats.variance({ unbiased: true })
   */
  variance(options: VarianceOptions = {}): Float64Array {
    checkKeys(options, VARIANCE_OPTIONS);
    const unbiased = checkBoolean("unbiased", options.unbiased, false);
    const d = unbiased ? this.count - 1 : this.count;
    return this.m2State.map((m2) => (d > 0 ? m2 / d : NaN));
  }

  /**
   * Adds a batch; an empty one changes nothing.
   * @param x the batch: a Float32Array or a WasmTensor of this backend.
   * @returns this, for chaining.
   * @throws {TypeError|RangeError} for a bad argument (named), or a channel count other than numFeatures.
   * @example stats.update(x, { shape: [8, 3, 32, 32] })
   */
  update(x: Tensor, options: RunningStatsUpdateOptions): this {
    return this.engine.run("update", this.updateSteps(x, options));
  }

  /**
   * update on the worker pool: resolves with this accumulator when the batch is added, never
   * blocking the caller (leave `x` unchanged until then). Rejects where update throws.
   */
  updateAsync(x: Tensor, options: RunningStatsUpdateOptions): Promise<this> {
    return this.engine.runAsync(() => this.updateSteps(x, options));
  }

  private *updateSteps(x: Tensor, options: RunningStatsUpdateOptions): Steps<this> {
    const xOp = checkTensor("x", x, this.engine.memory);
    checkKeys(options, UPDATE_OPTIONS);
    const g = geometry(options.shape, checkLayout(options.layout), x.length);
    if (g.c !== this.numFeatures) {
      throw new RangeError(`x: expected ${this.numFeatures} channels (numFeatures), got ${g.c} in shape [${g.shape.join(", ")}]`);
    }
    if (g.count === 0) return this;
    const engine = this.engine;
    const sc = engine.scratch(g.c);
    this.addStatistics(yield* engine.batchStats(xOp, g, sc, true));
    return this;
  }

  /**
   * Adds everything `other` has seen (`other` is unchanged).
   * @returns this, for chaining.
   * @throws {TypeError} when `other` is not a RunningStats.
   * @throws {RangeError} when its numFeatures differ.
   * @example
   * const total = partA.merge(partB); // as if partA had seen partB's batches too
   */
  merge(other: RunningStats): this {
    if (!(other instanceof RunningStats)) throw new TypeError(`other: expected a RunningStats, got ${describe(other)}`);
    if (other.numFeatures !== this.numFeatures) {
      throw new RangeError(`other: expected ${this.numFeatures} features, got ${other.numFeatures}`);
    }
    this.mergeState(other.count, other.meanState, other.m2State);
    return this;
  }

  /**
   * The JSON form (see {@link RunningStatsJSON}); `JSON.stringify(stats)` calls it.
   * @example
   * const restored = bn.RunningStats.fromJSON(JSON.stringify(stats));
   */
  toJSON(): RunningStatsJSON {
    return { numFeatures: this.numFeatures, count: this.count, mean: f64ToJSON(this.meanState), m2: f64ToJSON(this.m2State) };
  }

  /** @internal restores state checked by validateJSON */
  load(json: { count: number; mean: Float64Array; m2: Float64Array }): this {
    this.count = json.count;
    this.meanState.set(json.mean);
    this.m2State.set(json.m2);
    return this;
  }

  /**
   * @internal checks a RunningStatsJSON (object or JSON text) for fromJSON: only states a real
   * accumulator can hold load. Errors name the field.
   */
  static validateJSON(input: unknown): { numFeatures: number; count: number; mean: Float64Array; m2: Float64Array } {
    const j = parseJSON(input) as Record<keyof RunningStatsJSON, unknown>;
    checkKeys(j, JSON_FIELDS, "json", "json.", "field");
    const c = checkNumFeatures("json.numFeatures", j.numFeatures);
    const count = j.count;
    if (typeof count !== "number") throw new TypeError(`json.count: expected a non-negative integer, got ${describe(count)}`);
    if (!Number.isSafeInteger(count) || count < 0) throw new RangeError(`json.count: expected a non-negative integer, got ${count}`);
    const mean = floatsFromJSON("json.mean", j.mean, c);
    const m2 = floatsFromJSON("json.m2", j.m2, c);
    for (let i = 0; i < c; i++) {
      if (m2[i] < 0) throw new RangeError(`json.m2[${i}]: expected >= 0 (a sum of squares), got ${m2[i]}`);
      if (count === 0 && (mean[i] !== 0 || m2[i] !== 0)) {
        const [key, v] = mean[i] !== 0 ? ["mean", mean[i]] : ["m2", m2[i]];
        throw new RangeError(`json.${key}[${i}]: expected 0 with count 0 (nothing seen), got ${v}`);
      }
    }
    return { numFeatures: c, count, mean, m2 };
  }

  /** @internal adds a batch's statistics from a pass (count, mean, biased variance); a count of 0 adds nothing */
  addStatistics(s: Statistics): void {
    this.mergeState(s.count, s.mean, s.variance.map((v) => v * s.count));
  }

  private mergeState(nb: number, meanB: ArrayLike<number>, m2B: ArrayLike<number>): void {
    if (nb === 0) return;
    for (let i = 0; i < this.numFeatures; i++) chanMerge(this.meanState, this.m2State, i, this.count, nb, meanB[i], m2B[i]);
    this.count += nb;
  }
}
