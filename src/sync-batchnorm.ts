// SyncBatchNorm: the BatchNorm module for data-parallel training across processes or machines, as
// torch.nn.SyncBatchNorm. In training mode each forwardAsync exchanges every rank's exact batch
// statistics (count, mean, M2; src/split-phase.ts) through the user's `allgather`, merges them in rank
// order (the same bits on every rank) and normalizes with them; each backwardAsync exchanges the
// ranks' sums of dy and dy * (x - mean) the same way. Everything else is the module's.
import type { Engine, Reduced, Steps } from "./engine.js";
import { BatchNorm, type BatchNormModuleOptions } from "./module.js";
import { type BatchStatistics, batchStatisticsSteps, f64Row, mergeStatistics } from "./split-phase.js";
import { describe, type Tensor } from "./validate.js";

/** What a rank sends to the others: its batch statistics (forward) or its backward sums (backward). */
export type SyncPart = BatchStatistics | Reduced;

/**
 * Options of `new bn.SyncBatchNorm(numFeatures, options)`: the module's (without `virtualBatchSize`
 * and `renorm`, which have no SyncBN meaning here) and `allgather`.
 */
export interface SyncBatchNormOptions extends Omit<BatchNormModuleOptions, "virtualBatchSize" | "renorm"> {
  /**
   * Sends this rank's part to every rank of the group and resolves with every rank's part, in rank
   * order, the same order on every rank (this rank's own included). Any transport: worker threads,
   * Node IPC, WebSockets, a message queue. Parts hold Float64Arrays; a transport that goes through
   * JSON may deliver them as arrays of numbers (accepted; exact for finite values). Every rank calls
   * it the same number of times, in the same order, also a rank whose batch is empty. Required.
   */
  allgather: (part: SyncPart) => Promise<SyncPart[]>;
}

/** The module's options SyncBatchNorm refuses. */
const REFUSED = ["virtualBatchSize", "renorm"] as const;

/**
 * Batch normalization over a batch split across processes or machines, like
 * `torch.nn.SyncBatchNorm`: in training mode the statistics are those of the whole group's batch (each
 * rank's counted once, one value per channel over the whole group being enough), the running
 * statistics are updated with them identically on every rank, and backward's sums are the group's.
 * Each rank keeps the weight and bias gradients of its own shard, as PyTorch does (a data-parallel
 * gradient all-reduce then sums or averages them). Eval mode and a frozen module do not communicate.
 * Training-mode calls are async only (`forwardAsync`, `backwardAsync`): they await `allgather`.
 *
 * @example
 * const layer = new bn.SyncBatchNorm(64, { allgather: (part) => myTransport.allgather(part) });
 * const y = await layer.forwardAsync(shard, [8, 64, 28, 28]);
 * const dx = await layer.backwardAsync(dy);
 */
export class SyncBatchNorm extends BatchNorm {
  private readonly allgather: (part: SyncPart) => Promise<SyncPart[]>;
  /** The merged count of the last synchronized forward, or null. */
  private syncedCount: number | null = null;

  /** @internal use `new bn.SyncBatchNorm(numFeatures, options)` */
  constructor(engine: Engine, numFeatures: number, options: SyncBatchNormOptions) {
    if (options === null || typeof options !== "object") throw new TypeError(`options: expected an object with allgather, got ${describe(options)}`);
    const { allgather, ...rest } = options;
    for (const key of REFUSED) {
      if ((rest as Record<string, unknown>)[key] != null) throw new TypeError(`${key}: not available on SyncBatchNorm`);
    }
    super(engine, numFeatures, rest);
    if (typeof allgather !== "function") throw new TypeError(`allgather: expected a function (part) => Promise<part[]>, got ${describe(allgather)}`);
    this.allgather = allgather;
  }

  /** Whether a forward now exchanges statistics: training mode, not frozen. */
  private get syncs(): boolean {
    return this.training && !this.frozen;
  }

  /**
   * The module's forward in eval mode or when frozen; in training mode it must exchange statistics:
   * use forwardAsync.
   * @throws {TypeError} in training mode (not frozen).
   */
  override forward(x: Tensor, shape: readonly number[]): Float32Array {
    if (this.syncs) throw new TypeError("forward: a SyncBatchNorm in training mode exchanges statistics with the other ranks: use forwardAsync");
    this.syncedCount = null;
    return super.forward(x, shape);
  }

  /**
   * Normalizes this rank's shard `x` with the statistics of every rank's shard (training mode), or as
   * the module does (eval mode, frozen). Resolves with y.
   * @throws {TypeError|RangeError} (rejects) for a bad argument, for parts from `allgather` that do not
   *   fit (wrong channels, not an array of parts), or fewer than 2 values per channel over the group.
   */
  override async forwardAsync(x: Tensor, shape: readonly number[]): Promise<Float32Array> {
    if (!this.syncs) {
      this.syncedCount = null;
      return super.forwardAsync(x, shape);
    }
    const engine = this.engine;
    const local = await engine.runAsync(() => this.localStatistics(x, shape));
    const merged = mergeStatistics((await this.allgather(local)) as BatchStatistics[], this.numFeatures);
    if (merged.count < 2) throw new RangeError(`Expected more than 1 value per channel when training, got ${merged.count} over all ranks`);
    const given = { count: merged.count, mean: merged.mean, variance: merged.m2.map((m) => m / merged.count) };
    const y = await engine.runAsync(() => this.forwardSteps(x, shape, given));
    this.syncedCount = merged.count;
    return y;
  }

  /**
   * The module's backward after an eval-mode or frozen forward; after a training-mode one it must
   * exchange sums: use backwardAsync.
   * @throws {TypeError} after a training-mode forward.
   */
  override backward(dy: Tensor): Float32Array {
    if (this.syncedCount !== null) throw new TypeError("backward: after a training-mode forward a SyncBatchNorm exchanges sums with the other ranks: use backwardAsync");
    return super.backward(dy);
  }

  /**
   * Gradients of the last forward for this rank's `dy`: dx through the group's statistics (the sums
   * of every rank), and this rank's own weight and bias gradients added to `weightGrad`/`biasGrad`.
   * @throws {TypeError|RangeError} (rejects) as the module's backward, and for parts that do not fit.
   */
  override async backwardAsync(dy: Tensor): Promise<Float32Array> {
    const count = this.syncedCount;
    if (count === null) return super.backwardAsync(dy);
    const engine = this.engine;
    const local = await engine.runAsync(() => this.localSums(dy));
    const parts = await this.allgather(local);
    if (!Array.isArray(parts) || parts.length === 0) throw new TypeError(`allgather: expected a non-empty array of parts, got ${describe(parts)}`);
    const c = this.numFeatures;
    const reduced = { sumDy: new Float64Array(c), sumDyXc: new Float64Array(c), count };
    parts.forEach((part, r) => {
      const p = part as Reduced;
      const sumDy = f64Row(`parts[${r}].sumDy`, p?.sumDy, c);
      const sumDyXc = f64Row(`parts[${r}].sumDyXc`, p?.sumDyXc, c);
      for (let i = 0; i < c; i++) {
        reduced.sumDy[i] += sumDy[i];
        reduced.sumDyXc[i] += sumDyXc[i];
      }
    });
    return engine.runAsync(() => this.backwardSteps(dy, { reduced, local }));
  }

  /** This rank's batch statistics, after the checks the forward makes. */
  private *localStatistics(x: Tensor, shape: readonly number[]): Steps<BatchStatistics> {
    return yield* batchStatisticsSteps(this.engine, x, { shape, layout: this.layout }, this.numFeatures);
  }

  /** This rank's sums of dy and dy * (x - mean) for the saved forward. */
  private *localSums(dy: Tensor): Steps<Reduced> {
    const { dyOp, saved } = this.checkBackward(dy);
    const { g } = saved;
    if (g.length === 0) return { sumDy: new Float64Array(g.c), sumDyXc: new Float64Array(g.c) };
    const o = { mean: saved.mean64, invstd: saved.invstd64, relu: saved.relu };
    return yield* this.engine.backwardReduce(dyOp, saved.x, g, this.engine.scratch(g.c), o);
  }
}
