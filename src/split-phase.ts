// The split-phase functional API for BN across processes or machines (SyncBN): each rank computes the
// exact mergeable statistics of its shard (count, mean, M2 per channel, in float64), all ranks merge
// every rank's parts in the same order (Chan et al., so the same bits on every rank), normalize with
// the merged statistics (batchNorm's `statistics` option), and for backward sum their local
// reductions (sum(dy), sum(dy * (x - mean))) before the dx pass (batchNormBackward's `reduced` and
// `count`). PyTorch's SyncBatchNorm exchanges (mean, invstd, count) and rebuilds the variance from
// invstd, losing precision; these parts lose nothing.
import { chanMerge } from "./chan-merge.js";
import { floatsFromJSON } from "./json.js";
import type { Engine, Steps } from "./engine.js";
import { Activation, Layout, Tensor, checkKeys, checkLayout, checkTensor, describe, geometry } from "./validate.js";

/** The exact mergeable statistics of a batch (or of a merge of batches), per channel, in float64. */
export interface BatchStatistics {
  /** Values per channel (N times the spatial size); 0 for an empty batch. */
  count: number;
  /** Per-channel mean (length C; 0 for an empty batch). */
  mean: Float64Array;
  /** Per-channel sum of squared deviations from the mean (length C): the biased variance is m2 / count. */
  m2: Float64Array;
}

/**
 * A part as {@link Backend.mergeStatistics} accepts it: a {@link BatchStatistics}, or one passed
 * through JSON (arrays of numbers: exact for finite values).
 */
export interface BatchStatisticsInput {
  count: number;
  mean: Float64Array | readonly number[];
  m2: Float64Array | readonly number[];
}

/** Options of {@link Backend.batchStatistics}. */
export interface BatchStatisticsOptions {
  /** Shape in memory order, as in {@link BatchNormOptions.shape}. Required. */
  shape: readonly number[];
  /** Where the channel axis is. Default `'channels-first'`. */
  layout?: Layout;
}

/** Options of {@link Backend.batchNormBackwardReduce}. */
export interface BatchNormBackwardReduceOptions {
  /** The forward's shape in memory order. Required. */
  shape: readonly number[];
  /** The forward's layout. Default `'channels-first'`. */
  layout?: Layout;
  /** The `mean` the forward returned. Required. */
  mean: Tensor;
  /** The `invstd` the forward returned. Required. */
  invstd: Tensor;
  /** The forward's weight (needed only with a ReLU). Default none. */
  weight?: Tensor | null;
  /** The forward's bias (needed only with a ReLU). Default none. */
  bias?: Tensor | null;
  /** The forward's activation: through a fused ReLU, dy counts as 0 where its output was <= 0. Default `'none'`. */
  activation?: Activation;
}

/** What {@link Backend.batchNormBackwardReduce} returns: this shard's sums, to be added over all ranks. */
export interface BatchNormBackwardReduced {
  /** Per-channel sum of dy (length C). */
  sumDy: Float64Array;
  /** Per-channel sum of dy * (x - mean) (length C). */
  sumDyXc: Float64Array;
}

const STATISTICS_OPTIONS: ReadonlySet<string> = new Set(["shape", "layout"]);
const PART_KEYS: ReadonlySet<string> = new Set(["count", "mean", "m2"]);

/** A float64 row of length `c` from a Float64Array or an array of numbers (JSON's too), else a named error. */
export function f64Row(name: string, v: unknown, c: number): Float64Array {
  return floatsFromJSON(name, v, c, "Float64Array");
}

/** A checked part: count a non-negative integer, mean and m2 of length `c` (c from the first part when null). */
export function checkPart(name: string, v: unknown, c: number | null): BatchStatistics {
  if (v === null || typeof v !== "object") throw new TypeError(`${name}: expected { count, mean, m2 }, got ${describe(v)}`);
  checkKeys(v, PART_KEYS, name, `${name}.`, "field");
  const p = v as BatchStatisticsInput;
  if (!Number.isSafeInteger(p.count) || p.count < 0) throw new TypeError(`${name}.count: expected a non-negative integer, got ${describe(p.count)}`);
  const length = c ?? (p.mean as { length?: unknown } | null)?.length;
  if (typeof length !== "number" || length < 1) throw new TypeError(`${name}.mean: expected a Float64Array or an array of numbers, got ${describe(p.mean)}`);
  return { count: p.count, mean: f64Row(`${name}.mean`, p.mean, length), m2: f64Row(`${name}.m2`, p.m2, length) };
}

/** The batch statistics of x; `channels`: the channel count a module expects. */
export function* batchStatisticsSteps(engine: Engine, x: Tensor, options: BatchStatisticsOptions, channels?: number): Steps<BatchStatistics> {
  checkKeys(options, STATISTICS_OPTIONS);
  const xOp = checkTensor("x", x, engine.memory);
  const g = geometry(options.shape, checkLayout(options.layout), x.length);
  if (channels !== undefined && g.c !== channels) {
    throw new RangeError(`x: expected ${channels} channels (numFeatures), got ${g.c} in shape [${g.shape.join(", ")}]`);
  }
  if (g.count === 0) return { count: 0, mean: new Float64Array(g.c), m2: new Float64Array(g.c) };
  const s = yield* engine.batchStats(xOp, g, engine.scratch(g.c), false);
  return { count: s.count, mean: s.mean, m2: s.variance.map((v) => v * s.count) };
}

/**
 * Merges parts in the given order by Chan et al.'s formula (empty parts add nothing): every rank that
 * merges the same parts in the same order gets the same bits. `channels`: the count every part must
 * have (else the first part's).
 */
export function mergeStatistics(parts: readonly BatchStatisticsInput[], channels: number | null = null): BatchStatistics {
  if (!Array.isArray(parts) || parts.length === 0) throw new TypeError(`parts: expected a non-empty array of { count, mean, m2 }, got ${describe(parts)}`);
  const first = checkPart("parts[0]", parts[0], channels);
  const c = first.mean.length;
  const checked = [first, ...parts.slice(1).map((p, i) => checkPart(`parts[${i + 1}]`, p, c))];
  const mean = new Float64Array(c);
  const m2 = new Float64Array(c);
  let count = 0;
  for (const p of checked) {
    if (p.count === 0) continue;
    for (let i = 0; i < c; i++) chanMerge(mean, m2, i, count, p.count, p.mean[i], p.m2[i]);
    count += p.count;
  }
  return { count, mean, m2 };
}
