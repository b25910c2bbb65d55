// The pass layer shared by the functional API, the BatchNorm module and RunningStats: per-channel
// scratch, the one staging loop (tensors in wasm memory are used in place; Float32Arrays are staged
// through cache-sized chunks), the split of each block into parts for threads, the one merge of
// partial statistics, and the forward, backward and statistics passes. Callers validate first;
// nothing here checks arguments.
//
// A pass is a generator that yields one job per part (the kernel calls of one thread) and resumes
// when they are done, so the same code runs synchronously (run) and asynchronously (runAsync);
// the executor decides where the jobs run. Parts split a block by channel where they can, writing
// disjoint channels of the shared rows (bit-identical to one thread), and otherwise by rows (or
// images), each into its own partial rows, merged in a fixed order (the same bits on every run for a
// given thread count).
import { chanMerge } from "./chan-merge.js";
import type { Executor, Job } from "./executor.js";
import type { BackendName, Kernels } from "./kernels.js";
import { WasmMemory } from "./memory.js";
import type { Geometry } from "./validate.js";

/** Byte addresses of one part's partial rows (f64 rows of C, and `work`: 2 f32 rows of C rounded up to 4). */
export interface Part {
  mean: number;
  variance: number;
  total: number;
  sumDy: number;
  sumDyXc: number;
  work: number;
}

/** Byte addresses of the per-channel scratch rows for `c` channels. */
export interface Scratch {
  c: number;
  /** f64 rows (the first part's partial rows are the shared ones) */
  mean: number;
  variance: number;
  invstd: number;
  sumDy: number;
  sumDyXc: number;
  dweight: number;
  /** f32 rows */
  weight: number;
  bias: number;
  runningMean: number;
  runningVar: number;
  /** coefficient block: COEF_ROWS rows of C rounded up to 4 floats; the first three (mh, invstd, ml) are read back (assembly/coefficients.ts) */
  coef: number;
  /** a second block: the forward's, which a backward through a fused ReLU recomputes its mask from */
  mask: number;
  /** parts[0] shares the rows above; the others have their own */
  parts: Part[];
}

/** The scratch rows for `c` channels and `parts` parts from `base`, each 64-byte aligned, and the bytes they span. */
function scratchLayout(base: number, c: number, parts: number, coefRows: number): { scratch: Scratch; bytes: number } {
  let at = base;
  const take = (bytes: number): number => {
    const ptr = at;
    at += Math.ceil(bytes / 64) * 64;
    return ptr;
  };
  const stride = (c + 3) & ~3;
  const shared = {
    mean: take(c * 8),
    variance: take(c * 8),
    total: take(c * 8),
    sumDy: take(c * 8),
    sumDyXc: take(c * 8),
    coef: take(coefRows * stride * 4),
  };
  const scratch: Scratch = {
    c,
    mean: shared.mean,
    variance: shared.variance,
    invstd: take(c * 8),
    sumDy: shared.sumDy,
    sumDyXc: shared.sumDyXc,
    dweight: take(c * 8),
    weight: take(c * 4),
    bias: take(c * 4),
    runningMean: take(c * 4),
    runningVar: take(c * 4),
    coef: shared.coef,
    mask: take(coefRows * stride * 4),
    // the stats kernels use the coefficient block's first rows as their f32 work rows
    parts: [{ ...shared, work: shared.coef }],
  };
  for (let p = 1; p < parts; p++) {
    scratch.parts.push({
      mean: take(c * 8), variance: take(c * 8), total: take(c * 8), sumDy: take(c * 8), sumDyXc: take(c * 8), work: take(2 * stride * 4),
    });
  }
  return { scratch, bytes: at - base };
}

/**
 * A tensor as the passes take it: a wasm address (a WasmTensor, or a view inside one, resolved by
 * validate.ts), or a Float32Array outside wasm memory, staged through chunks.
 */
export type Operand = number | Float32Array;

/**
 * A block of a tensor the kernels take in one call: `length` floats from `offset`, `n` images
 * (channels-first) or rows (channels-last), channels [c0, c1), `count` values per channel.
 */
interface Block {
  offset: number;
  length: number;
  n: number;
  c0: number;
  c1: number;
  count: number;
}

/**
 * One part of a block: channels [c0, c1) of images (or rows) [i0, i1) of the block, `count` values
 * per channel, writing its statistics or sums into `rows` (shared rows for a channel split, its own
 * for a row split: then `own`).
 */
interface Slice {
  c0: number;
  c1: number;
  i0: number;
  i1: number;
  count: number;
  rows: Part;
  own: boolean;
}

/**
 * The forward's weight and bias (none: null), from which a backward through a fused ReLU rebuilds the
 * forward's coefficient block, and so the very outputs it clipped, with the forward's mean and invstd.
 */
export interface ReluMask {
  weight: Operand | null;
  bias: Operand | null;
}

/** Running statistics to read (eval) or update (training, when `factor` is a number). */
export interface Running {
  mean: Operand;
  variance: Operand;
  /** The update takes the batch's biased variance (Keras, ONNX) instead of the unbiased one (PyTorch). */
  biased: boolean;
}

/**
 * The per-channel statistics a pass computed or a forward normalized with, in float64, each in an
 * ArrayBuffer of its own: the caller keeps them (no scratch row outlives its pass).
 */
export interface Statistics {
  /** Values per channel behind `mean` and `variance`: the batch's count, or 0 for running statistics. */
  count: number;
  mean: Float64Array;
  /** The batch's biased variance, or the running variance. */
  variance: Float64Array;
  /** 1 / sqrt(variance + eps) as the forward used it (NaN in a statistics pass, which has no eps). */
  invstd: Float64Array;
}

/**
 * A hook between a training forward's statistics pass and its normalize pass (batch renormalization,
 * src/renorm.ts): from the batch mean and biased variance (f64 copies), the per-channel weight and
 * bias to normalize with instead of the call's.
 */
export type Reweight = (mean: Float64Array, variance: Float64Array) => { weight: Float32Array; bias: Float32Array };

/** Statistics a forward is given instead of computing them (SyncBN's merged ones): per channel, float64. */
export interface GivenStatistics {
  /** Values per channel behind them (for the running variance's n / (n - 1)). */
  count: number;
  mean: Float64Array;
  /** Biased variance. */
  variance: Float64Array;
}

/** What a forward pass normalizes with and what it updates (see {@link Engine.forward}). */
export interface ForwardSpec {
  weight: Operand | null;
  bias: Operand | null;
  eps: number;
  /** The statistics: the batch's, `running`'s, or given ones. */
  stats: "batch" | "running" | GivenStatistics;
  running: Running | null;
  /** Training with running statistics: running = (1 - f) * running + f * (batch or given). */
  factor: number | null;
  /** With batch statistics: the weight and bias to normalize with instead (batch renormalization). */
  reweight?: Reweight | null;
  /** y = max(0, y), in the same kernels. */
  relu?: boolean;
  /**
   * Batch statistics with f64 squares (float64-grade M2 in the same single pass, for exact population
   * statistics); not the fused channels-first kernel.
   */
  wide?: boolean;
}

/** What the reduce half of a backward pass needs (see {@link Engine.backwardReduce}). */
export interface ReduceSpec {
  /** The f64 mean and invstd the forward normalized with. */
  mean: Float64Array;
  invstd: Float64Array;
  /** Through a fused ReLU: the forward's weight and bias. */
  relu?: ReluMask | null;
}

/** Per-channel sums of a backward's reduce half. */
export interface Reduced {
  sumDy: Float64Array;
  sumDyXc: Float64Array;
}

/** What a backward pass needs (see {@link Engine.backward}). */
export interface BackwardSpec extends ReduceSpec {
  weight: Operand | null;
  /** The statistics came from the batch (the gradient flows through them). */
  training: boolean;
  /** SyncBN: the sums over every rank and their count, used instead of this tensor's own. */
  reduced?: (Reduced & { count: number }) | null;
}

/** Steps of a pass or an API call: yield one job per part, resume when they are done, return the result. */
export type Steps<T> = Generator<Job[], T, void>;
type Pass<T> = Steps<T>;

export class Engine {
  /**
   * Input bytes per channel group in the channels-first training forward, which should stay in cache
   * between its statistics and normalize passes. Measured on a 32 MiB-L3 EPYC (S1, ratio to a copy):
   * 1 MiB 1.80, 4 MiB 1.44, 16 MiB 1.34, whole tensor 1.31: long streams beat L2-sized groups, so
   * groups are sized to stay within L3.
   */
  static groupBytes = 16 << 20;

  /**
   * Bytes per chunk when Float32Arrays are staged through wasm memory (L2-sized). Measured here (S1
   * inference, copying API): 32 KiB 5.2 ms, 256 KiB 4.5 ms, 1 MiB 4.4 ms, 4 MiB 4.0 ms.
   */
  static chunkBytes = 1 << 20;

  /**
   * Channels per part from which a channels-last statistics pass splits by channel rather than by
   * rows: each part then pays the per-channel costs (shift, finish, merge) for its channels only, and
   * gives the bits of one thread. Measured here (2 threads over 1, [N, C] training, by rows -> by
   * channel): [256, 1024] 1.02x -> 1.31x, [64, 4096] 0.66x -> 1.15x, but [4096, 128] 1.75x -> 1.39x
   * (64-channel runs); the normalize and backward passes measured as fast or faster by rows.
   */
  static rowRunChannels = 256;

  private scratchBlock = 0;
  private scratchChannels = -1;
  private current: Scratch | null = null;
  /** Async calls run one at a time, in order; a sync call meanwhile throws. */
  private queue: Promise<unknown> = Promise.resolve();
  private inFlight = 0;
  /** Set while runAsync drives steps: passes then split for the workers only. */
  private asyncMode = false;

  constructor(
    readonly name: BackendName,
    readonly kernels: Kernels,
    readonly memory: WasmMemory,
    readonly executor: Executor,
  ) {}

  /** Threads a sync call may use. */
  get threads(): number {
    return this.executor.threads;
  }

  /** Throws if an async call is in flight: sync calls would share its scratch. */
  private assertIdle(what: string): void {
    if (this.inFlight) {
      throw new Error(`${what}: an async call is in flight on this backend; await it first (or use another backend from init())`);
    }
  }

  /**
   * Runs `fn` after every async call queued before it, alone on this backend's scratch. From this
   * call until `fn` settles, sync calls throw (assertIdle).
   */
  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    this.inFlight++;
    const run = this.queue.then(fn).finally(() => this.inFlight--);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Scratch for `c` channels, reused across calls (allocate it before taking any views). */
  scratch(c: number): Scratch {
    const parts = Math.max(this.executor.threads, this.executor.pool?.size ?? 1);
    if (c > this.scratchChannels) {
      const grown = Math.max(c, 2 * this.scratchChannels, 64);
      const block = this.memory.alloc(scratchLayout(0, grown, parts, this.kernels.COEF_ROWS.value).bytes, "channel scratch");
      if (this.scratchBlock) this.memory.release(this.scratchBlock);
      this.scratchBlock = block;
      this.scratchChannels = grown;
      this.current = null;
    }
    if (this.current?.c !== c) this.current = scratchLayout(this.scratchBlock, c, parts, this.kernels.COEF_ROWS.value).scratch;
    return this.current;
  }

  f64(ptr: number, length: number): Float64Array {
    return this.memory.f64(ptr, length);
  }

  // Passes are generators (Steps) that yield one job per part. `run` drives a caller's steps
  // synchronously (the parts split over the caller and the pool where the caller may block);
  // `runAsync` drives them on the pool's workers, after every async call queued before, and never
  // blocks the caller. The API functions are themselves steps (validate, yield* a pass, finish), so
  // sync and async calls share every line.

  /** Runs `steps` synchronously; throws if an async call is in flight (it would share the scratch). */
  run<T>(what: string, steps: Steps<T>): T {
    this.assertIdle(what);
    for (let step = steps.next(); ; step = steps.next()) {
      if (step.done) return step.value;
      this.executor.run(step.value);
    }
  }

  /** Runs the steps `make()` returns on the pool's workers, after every async call queued before. */
  runAsync<T>(make: () => Steps<T>): Promise<T> {
    return this.serialize(async () => {
      this.asyncMode = true;
      try {
        const steps = make();
        for (let step = steps.next(); ; step = steps.next()) {
          if (step.done) return step.value;
          await this.executor.runAsync(step.value);
        }
      } finally {
        this.asyncMode = false;
      }
    });
  }

  /** Parts for a pass over `bytes` of data in the current mode. */
  private parts(bytes: number): number {
    return this.asyncMode ? this.executor.partsAsync(bytes) : this.executor.parts(bytes);
  }

  /**
   * Forward pass from `x` to `y` (y may be x) as `o` says; returns the statistics it normalized with.
   * With `o.factor` the running statistics are updated in place: running = (1 - f) * running + f *
   * batch (or given), the variance unbiased as in torch unless `running.biased`. With `o.reweight` the
   * normalize pass takes the weight and bias it returns (the fused channels-first kernel is not used then).
   */
  forward(x: Operand, y: Operand, g: Geometry, sc: Scratch, o: ForwardSpec): Steps<Statistics> {
    return this.forwardPass(x, y, g, sc, o, this.parts(g.length * 4));
  }

  /** The batch's mean and biased variance; `exact` sums in f64 throughout. */
  *batchStats(x: Operand, g: Geometry, sc: Scratch, exact: boolean): Steps<Statistics> {
    yield* this.statsPass(x, g, sc, exact ? "exact" : "fast", this.parts(g.length * 4));
    return this.statistics(sc, g.count, sc.mean, sc.variance, null);
  }

  /** The statistics in rows `mean` and `variance` (f64, or the f32 running ones when count is 0), copied out. */
  private statistics(sc: Scratch, count: number, mean: number, variance: number, invstd: number | null): Statistics {
    const c = sc.c;
    const m = this.memory;
    const row = (ptr: number) => (count ? this.f64(ptr, c).slice() : Float64Array.from(m.f32(ptr, c)));
    return { count, mean: row(mean), variance: row(variance), invstd: invstd ? this.f64(invstd, c).slice() : new Float64Array(c).fill(NaN) };
  }

  /**
   * Backward pass from the f64 `mean` and `invstd` the forward normalized with: dx to `dx` (may be
   * dy); returns dweight and dbias in f64 (the caller rounds), from this tensor's sums or, with
   * `o.reduced`, from the given ones. `o.training`: the statistics came from the batch, so the gradient
   * flows through them. `o.relu`: through a fused ReLU (dy counts as 0 where the forward's output was
   * <= 0), given the forward's weight and bias.
   */
  backward(dy: Operand, x: Operand, dx: Operand, g: Geometry, sc: Scratch, o: BackwardSpec): Steps<{ dweight: Float64Array; dbias: Float64Array }> {
    return this.backwardPass(dy, x, dx, g, sc, o, this.parts(g.length * 4));
  }

  /** The reduce half of backward alone: this tensor's sum(dy) and sum(dy * (x - mean)) per channel (SyncBN adds them over ranks). */
  *backwardReduce(dy: Operand, x: Operand, g: Geometry, sc: Scratch, o: ReduceSpec): Steps<Reduced> {
    const mask = this.prepareBackward(g, sc, o);
    const temps: number[] = [];
    try {
      const blocks = this.blocks(g, dy, x);
      const bufDy = typeof dy === "number" ? 0 : this.alloc(blocks[0].length, temps);
      const bufX = typeof x === "number" ? 0 : this.alloc(blocks[0].length, temps);
      yield* this.reduceBlocks(dy, x, g, sc, blocks, bufDy, bufX, mask, this.parts(g.length * 4));
    } finally {
      this.release(temps);
    }
    return { sumDy: this.f64(sc.sumDy, g.c).slice(), sumDyXc: this.f64(sc.sumDyXc, g.c).slice() };
  }


  private *forwardPass(x: Operand, y: Operand, g: Geometry, sc: Scratch, o: ForwardSpec, parts: number): Pass<Statistics> {
    const k = this.kernels;
    const ex = this.executor;
    const { c } = g;
    const { eps, running, factor, reweight } = o;
    const relu = o.relu ?? false;
    const given = typeof o.stats === "object" ? o.stats : null;
    const batchStats = o.stats !== "running";
    let w = this.stageChannels(o.weight, sc.weight, c);
    let b = this.stageChannels(o.bias, sc.bias, c);
    // the running statistics a forward through them staged in wasm (and returns)
    let readMean = 0;
    let readVar = 0;
    if (o.stats === "batch" && !reweight && !o.wide && !g.rows && typeof x === "number" && typeof y === "number" && (parts === 1 || c >= parts)) {
      // both in wasm memory: statistics and normalize fused per channel group, split by channel
      const group = Math.max(1, Math.floor(Engine.groupBytes / (g.n * g.s * 4)));
      yield this.slices(g, this.whole(g), sc, parts).map((sl) => [
        ex.call("forwardTrainChannelsFirst", x, y, g.n, c, g.s, sl.c0, sl.c1, group, eps, w, b, sc.mean, sc.variance, sc.invstd, sc.coef, +relu),
      ]);
    } else {
      if (given) {
        this.f64(sc.mean, c).set(given.mean);
        this.f64(sc.variance, c).set(given.variance);
        k.forwardCoefficients(c, 0, c, sc.mean, sc.variance, 0, eps, w, b, sc.coef, sc.invstd);
      } else if (batchStats) {
        yield* this.statsPass(x, g, sc, o.wide ? "wide" : "fast", parts);
        if (reweight) {
          const r = reweight(this.f64(sc.mean, c).slice(), this.f64(sc.variance, c).slice());
          w = this.stageChannels(r.weight, sc.weight, c);
          b = this.stageChannels(r.bias, sc.bias, c);
        }
        k.forwardCoefficients(c, 0, c, sc.mean, sc.variance, 0, eps, w, b, sc.coef, sc.invstd);
      } else {
        readMean = this.stageChannels(running!.mean, sc.runningMean, c);
        readVar = this.stageChannels(running!.variance, sc.runningVar, c);
        k.forwardCoefficients(c, 0, c, readMean, readVar, 1, eps, w, b, sc.coef, sc.invstd);
      }
      const temps: number[] = [];
      try {
        const blocks = g.length ? this.blocks(g, x, y) : []; // empty: a rank of SyncBN with no data
        const size = blocks[0]?.length ?? 0;
        const bufX = typeof x === "number" || !size ? 0 : this.alloc(size, temps);
        const bufY = typeof y === "number" || !size ? 0 : bufX || this.alloc(size, temps);
        for (const blk of blocks) {
          const src = this.stage(x, blk, bufX);
          const dst = typeof y === "number" ? y + blk.offset * 4 : bufY;
          yield this.slices(g, blk, sc, blocks.length > 1 ? 1 : parts).map((sl) => [this.normalizeCall(src, dst, g, blk, sl, sc, relu)]);
          if (typeof y !== "number") y.set(this.memory.f32(dst, blk.length), blk.offset);
        }
      } finally {
        this.release(temps);
      }
    }
    if (!batchStats) return this.statistics(sc, 0, readMean, readVar, sc.invstd);
    const count = given ? given.count : g.count;
    const stats = this.statistics(sc, count, sc.mean, sc.variance, sc.invstd);
    if (running && factor !== null) {
      const rm = this.stageChannels(running.mean, sc.runningMean, c);
      const rv = this.stageChannels(running.variance, sc.runningVar, c);
      k.updateRunning(0, c, sc.mean, sc.variance, running.biased ? 1 : count / (count - 1), factor, rm, rv);
      if (typeof running.mean !== "number") running.mean.set(this.memory.f32(rm, c));
      if (typeof running.variance !== "number") running.variance.set(this.memory.f32(rv, c));
    }
    return stats;
  }

  /**
   * Batch mean and biased variance into the scratch mean/variance rows, for the pass that called it
   * to read before it returns. One block in one part: the
   * kernel writes them. Otherwise the parts' sums of x add up (as torch's one f64 sum does) and their
   * M2 merge by Chan et al.'s formula, in block and part order.
   */
  private *statsPass(x: Operand, g: Geometry, sc: Scratch, mode: "fast" | "wide" | "exact", parts: number): Pass<void> {
    const { c } = g;
    const ex = this.executor;
    const k = this.kernels;
    const e = (mode === "exact" ? k.STATS_EXACT : mode === "wide" ? k.STATS_WIDE : k.STATS_FAST).value;
    const temps: number[] = [];
    try {
      const blocks = this.blocks(g, x);
      const buf = typeof x === "number" ? 0 : this.alloc(blocks[0].length, temps);
      let merged: { total: Float64Array; mean: Float64Array; m2: Float64Array; seen: Float64Array } | null = null;
      for (const blk of blocks) {
        const at = this.stage(x, blk, buf);
        const slices = this.slices(g, blk, sc, blocks.length > 1 ? 1 : parts, true);
        yield slices.map((sl) => {
          const p = sl.rows;
          if (g.rows) {
            const line = c * 4;
            return [ex.call("statsChannelsLast", at + sl.i0 * line, sl.i1 - sl.i0, c, sl.c0, sl.c1, p.mean, p.variance, p.total, p.work, e)];
          }
          const base = at - blk.c0 * g.s * 4 + sl.i0 * c * g.s * 4;
          return [ex.call("statsChannelsFirst", base, sl.i1 - sl.i0, c, g.s, sl.c0, sl.c1, p.mean, p.variance, p.total, p.work, e)];
        });
        if (blocks.length === 1 && !slices[0].own) return; // disjoint channels of the shared rows: done
        merged ??= { total: new Float64Array(c), mean: new Float64Array(c), m2: new Float64Array(c), seen: new Float64Array(c) };
        for (const sl of slices) {
          const total = this.f64(sl.rows.total, c);
          const variance = this.f64(sl.rows.variance, c);
          for (let ch = sl.c0; ch < sl.c1; ch++) {
            chanMerge(merged.mean, merged.m2, ch, merged.seen[ch], sl.count, total[ch] / sl.count, variance[ch] * sl.count);
            merged.total[ch] += total[ch];
            merged.seen[ch] += sl.count;
          }
        }
      }
      const { total, m2 } = merged!;
      this.f64(sc.mean, c).set(total.map((t) => t / g.count));
      this.f64(sc.variance, c).set(m2.map((v) => (Number.isNaN(v) ? NaN : v / g.count)));
    } finally {
      this.release(temps);
    }
  }

  /** The forward's f64 mean and invstd into the scratch rows, and the mask block for a fused ReLU (0: none). */
  private prepareBackward(g: Geometry, sc: Scratch, o: ReduceSpec): number {
    const { c } = g;
    const k = this.kernels;
    this.f64(sc.mean, c).set(o.mean);
    this.f64(sc.invstd, c).set(o.invstd);
    k.splitMeans(c, 0, c, sc.mean, sc.coef);
    // the forward's block, whose outputs the kernels recompute from x to mask dy
    if (!o.relu) return 0;
    k.maskCoefficients(c, 0, c, sc.mean, sc.invstd, this.stageChannels(o.relu.weight, sc.weight, c), this.stageChannels(o.relu.bias, sc.bias, c), sc.mask);
    return sc.mask;
  }

  /** sum(dy) and sum(dy * (x - mean)) of every block into the scratch rows sumDy and sumDyXc. */
  private *reduceBlocks(
    dy: Operand, x: Operand, g: Geometry, sc: Scratch, blocks: Block[], bufDy: number, bufX: number, mask: number, parts: number,
  ): Pass<void> {
    const { c } = g;
    // the reduce kernels add into the sums: blocks and parts add up, the parts' own rows last, in order
    for (const p of sc.parts) {
      this.f64(p.sumDy, c).fill(0);
      this.f64(p.sumDyXc, c).fill(0);
    }
    for (const blk of blocks) {
      const gAt = this.stage(dy, blk, bufDy);
      const xAt = this.stage(x, blk, bufX);
      yield this.slices(g, blk, sc, blocks.length > 1 ? 1 : parts).map((sl) => [
        this.rangeCall("backwardReduce", g, blk, sl, [gAt, xAt], [sc.mean, sl.rows.sumDy, sl.rows.sumDyXc, mask]),
      ]);
    }
    for (let p = 1; p < sc.parts.length; p++) {
      const [sumDy, sumDyXc] = [this.f64(sc.sumDy, c), this.f64(sc.sumDyXc, c)];
      const [a, b] = [this.f64(sc.parts[p].sumDy, c), this.f64(sc.parts[p].sumDyXc, c)];
      for (let ch = 0; ch < c; ch++) {
        sumDy[ch] += a[ch];
        sumDyXc[ch] += b[ch];
      }
    }
  }

  private *backwardPass(
    dy: Operand, x: Operand, dx: Operand, g: Geometry, sc: Scratch, o: BackwardSpec, parts: number,
  ): Pass<{ dweight: Float64Array; dbias: Float64Array }> {
    const k = this.kernels;
    const { c } = g;
    const { training, reduced } = o;
    // the mask's weight and bias share the staging rows with the weight: stage the weight after it
    const mask = this.prepareBackward(g, sc, o);
    const w = this.stageChannels(o.weight, sc.weight, c);
    const temps: number[] = [];
    try {
      const blocks = this.blocks(g, dy, x, dx);
      const size = blocks[0].length;
      const bufDy = typeof dy === "number" ? 0 : this.alloc(size, temps);
      const bufX = typeof x === "number" ? 0 : this.alloc(size, temps);
      const bufDx = typeof dx === "number" ? 0 : bufDy || this.alloc(size, temps);
      if (reduced) {
        this.f64(sc.sumDy, c).set(reduced.sumDy);
        this.f64(sc.sumDyXc, c).set(reduced.sumDyXc);
      } else {
        yield* this.reduceBlocks(dy, x, g, sc, blocks, bufDy, bufX, mask, parts);
      }
      k.backwardCoefficients(c, 0, c, reduced ? reduced.count : g.count, sc.sumDy, sc.sumDyXc, sc.invstd, w, training ? 1 : 0, sc.coef, sc.dweight);
      for (const blk of blocks) {
        const dst = typeof dx === "number" ? dx + blk.offset * 4 : bufDx;
        const gAt = this.stage(dy, blk, bufDy);
        // eval-mode dx = dy * k1 reads x only through a ReLU
        const xAt = training || mask ? this.stage(x, blk, bufX) : 0;
        yield this.slices(g, blk, sc, blocks.length > 1 ? 1 : parts).map((sl) => [
          training
            ? this.rangeCall("backwardDx", g, blk, sl, [gAt, xAt, dst], [sc.coef, mask])
            : mask
              ? this.rangeCall("backwardDxEval", g, blk, sl, [gAt, xAt, dst], [sc.coef, mask])
              : this.normalizeCall(gAt, dst, g, blk, sl, sc, false),
        ]);
        if (typeof dx !== "number") dx.set(this.memory.f32(dst, blk.length), blk.offset);
      }
    } finally {
      this.release(temps);
    }
    return { dweight: this.f64(sc.dweight, c).slice(), dbias: this.f64(sc.sumDy, c).slice() };
  }


  /** normalize (or eval-mode dx = dy * k1) on one part of a block; `relu`: clamped at 0. */
  private normalizeCall(x: number, y: number, g: Geometry, blk: Block, sl: Slice, sc: Scratch, relu: boolean): readonly number[] {
    return this.rangeCall("normalize", g, blk, sl, [x, y], [sc.coef, +relu]);
  }

  /**
   * A call of `${kind}ChannelsFirst` or `${kind}ChannelsLast` on one part: `tensors` are the block's
   * data addresses, offset to the part; `after` the arguments that follow the shape. Channels-first
   * kernels address channel ch at base + (i * C + ch) * S floats, so a block of channels [c0, c1)
   * passes base = start - c0 * S.
   */
  private rangeCall(kind: "normalize" | "backwardReduce" | "backwardDx" | "backwardDxEval", g: Geometry, blk: Block, sl: Slice, tensors: number[], after: number[]): readonly number[] {
    const ex = this.executor;
    if (g.rows) {
      const shift = sl.i0 * g.c * 4;
      return ex.call(`${kind}ChannelsLast` as const, ...tensors.map((t) => t + shift), sl.i1 - sl.i0, g.c, sl.c0, sl.c1, ...after);
    }
    const shift = sl.i0 * g.c * g.s * 4 - blk.c0 * g.s * 4;
    return ex.call(`${kind}ChannelsFirst` as const, ...tensors.map((t) => t + shift), sl.i1 - sl.i0, g.c, g.s, sl.c0, sl.c1, ...after);
  }

  /**
   * The parts of a block: channel ranges (channels-first with enough channels: the shared rows), else
   * ranges of rows or images (each part's own rows), else the whole block. Passes ask for 1 part when
   * they stage Float32Arrays through several chunks: the copies run on the calling thread and bound
   * the speed, and a wake-up per chunk measured slower than 1 thread (bench: S1-S5 copying API 0.9x).
   */
  private slices(g: Geometry, blk: Block, sc: Scratch, parts: number, stats = false): Slice[] {
    const channels = blk.c1 - blk.c0;
    const perImage = g.rows ? 1 : blk.count / blk.n;
    // channels-last rows split by channel only for statistics and when each part's run of a row is
    // long: ranges start on 16-channel (64-byte) boundaries, so vector groups, and results, are those
    // of one thread
    const unit = g.rows ? 16 : 1;
    if (parts > 1 && channels >= parts * (!g.rows ? 1 : stats ? Engine.rowRunChannels : Infinity)) {
      return split(Math.floor(channels / unit), parts).map(([a, b], p) => ({
        c0: blk.c0 + a * unit, c1: p === parts - 1 ? blk.c1 : blk.c0 + b * unit, i0: 0, i1: blk.n, count: blk.count, rows: sc.parts[0], own: false,
      }));
    }
    if (parts > 1 && blk.n >= parts) {
      return split(blk.n, parts).map(([a, b], p) => ({
        c0: blk.c0, c1: blk.c1, i0: a, i1: b, count: (b - a) * perImage, rows: sc.parts[p], own: true,
      }));
    }
    return [{ c0: blk.c0, c1: blk.c1, i0: 0, i1: blk.n, count: blk.count, rows: sc.parts[0], own: false }];
  }

  private release(temps: number[]): void {
    for (const ptr of temps) this.memory.release(ptr);
  }

  /** A per-channel array in wasm: its own address or a copy in `slot`; 0 for none. */
  private stageChannels(t: Operand | null, slot: number, c: number): number {
    if (t === null) return 0;
    if (typeof t === "number") return t;
    this.memory.f32(slot, c).set(t);
    return slot;
  }

  private alloc(elements: number, temps: number[]): number {
    const ptr = this.memory.alloc(elements * 4);
    temps.push(ptr);
    return ptr;
  }

  /** The block's data in wasm memory: at its offset in a wasm operand, else copied into `buf`. */
  private stage(t: Operand, blk: Block, buf: number): number {
    if (typeof t === "number") return t + blk.offset * 4;
    this.memory.f32(buf, blk.length).set(t.subarray(blk.offset, blk.offset + blk.length));
    return buf;
  }

  /** One block for tensors all in wasm memory, else cache-sized chunks to stage the others through. */
  private blocks(g: Geometry, ...operands: Operand[]): Block[] {
    return operands.every((t) => typeof t === "number") ? [this.whole(g)] : this.chunks(g);
  }

  private whole(g: Geometry): Block {
    return { offset: 0, length: g.length, n: g.rows ? g.count : g.n, c0: 0, c1: g.c, count: g.count };
  }

  /**
   * The tensor cut into blocks of about `chunkBytes` that the kernels take as they are: runs of rows
   * (channels-last), whole images, or a channel range of one image (channels-first).
   */
  private chunks(g: Geometry): Block[] {
    const limit = Math.max(1, Math.floor(Engine.chunkBytes / 4));
    const blocks: Block[] = [];
    const { c, s } = g;
    if (g.rows) {
      const per = Math.max(1, Math.floor(limit / c));
      for (let r = 0; r < g.count; r += per) {
        const rows = Math.min(per, g.count - r);
        blocks.push({ offset: r * c, length: rows * c, n: rows, c0: 0, c1: c, count: rows });
      }
    } else if (c * s <= limit) {
      const per = Math.floor(limit / (c * s));
      for (let i = 0; i < g.n; i += per) {
        const n = Math.min(per, g.n - i);
        blocks.push({ offset: i * c * s, length: n * c * s, n, c0: 0, c1: c, count: n * s });
      }
    } else {
      const per = Math.max(1, Math.floor(limit / s));
      for (let i = 0; i < g.n; i++) {
        for (let c0 = 0; c0 < c; c0 += per) {
          const c1 = Math.min(c, c0 + per);
          blocks.push({ offset: (i * c + c0) * s, length: (c1 - c0) * s, n: 1, c0, c1, count: s });
        }
      }
    }
    return blocks;
  }
}

/** [start, end) of `parts` near-equal ranges of `n`. */
function split(n: number, parts: number): [number, number][] {
  return Array.from({ length: parts }, (_, p) => [Math.floor((n * p) / parts), Math.floor((n * (p + 1)) / parts)]);
}
