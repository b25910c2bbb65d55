// The pointer-level passes shared by the functional API, the BatchNorm module and RunningStats:
// per-channel scratch, staging of inputs and outputs, kernel dispatch by layout, and the running
// statistics update. Callers validate first; nothing here checks arguments.
import { chanMerge } from "./chan-merge.js";
import type { BackendName, Kernels } from "./kernels.js";
import { WasmMemory } from "./memory.js";
import type { Geometry } from "./validate.js";

/** Rows in the coefficient block; the first three (mh, invstd, ml) are read back (assembly/coefficients.ts). */
const COEF_ROWS = 6;

/** Byte addresses of the per-channel scratch rows for `c` channels. */
export interface Scratch {
  c: number;
  /** f64 rows */
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
  /** coefficient block: 6 rows of C rounded up to 4 floats (assembly/coefficients.ts) */
  coef: number;
}

/** The scratch rows for `c` channels from `base`, each 64-byte aligned, and the bytes they span. */
function scratchLayout(base: number, c: number): { scratch: Scratch; bytes: number } {
  let at = base;
  const take = (bytes: number): number => {
    const ptr = at;
    at += Math.ceil(bytes / 64) * 64;
    return ptr;
  };
  const scratch: Scratch = {
    c,
    mean: take(c * 8),
    variance: take(c * 8),
    invstd: take(c * 8),
    sumDy: take(c * 8),
    sumDyXc: take(c * 8),
    dweight: take(c * 8),
    weight: take(c * 4),
    bias: take(c * 4),
    runningMean: take(c * 4),
    runningVar: take(c * 4),
    coef: take(COEF_ROWS * ((c + 3) & ~3) * 4),
  };
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

/** Running statistics to read (eval) or update (training, when `factor` is a number). */
export interface Running {
  mean: Operand;
  variance: Operand;
}

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

  private scratchBlock = 0;
  private scratchChannels = -1;
  private current: Scratch | null = null;

  constructor(
    readonly name: BackendName,
    readonly kernels: Kernels,
    readonly memory: WasmMemory,
  ) {}

  /** Scratch for `c` channels, reused across calls (allocate it before taking any views). */
  scratch(c: number): Scratch {
    if (c > this.scratchChannels) {
      const grown = Math.max(c, 2 * this.scratchChannels, 64);
      const block = this.memory.alloc(scratchLayout(0, grown).bytes, "channel scratch");
      if (this.scratchBlock) this.memory.release(this.scratchBlock);
      this.scratchBlock = block;
      this.scratchChannels = grown;
      this.current = null;
    }
    if (this.current?.c !== c) this.current = scratchLayout(this.scratchBlock, c).scratch;
    return this.current;
  }

  f64(ptr: number, length: number): Float64Array {
    return this.memory.f64(ptr, length);
  }

  /**
   * The forward's mean and invstd (f32) from the first rows of the coefficient block, each copied
   * into an ArrayBuffer of its own (so one can be transferred or serialized without the other), and
   * with `low` the mean's low part (mean - f32(mean)) as a plain array (a third ArrayBuffer would
   * cost more: per-call overhead matters on small tensors).
   */
  meanAndInvstd(sc: Scratch, low: boolean): { mean: Float32Array; invstd: Float32Array; meanLow: number[] | null } {
    const stride = ((sc.c + 3) & ~3) * 4;
    const m = this.memory;
    return {
      mean: m.copyOut(sc.coef, sc.c),
      invstd: m.copyOut(sc.coef + stride, sc.c),
      meanLow: low ? m.numbers(sc.coef + 2 * stride, sc.c) : null,
    };
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

  /**
   * Forward pass from `x` to `y` (y may be x). With `batchStats` the statistics come from the batch
   * and land in the scratch mean/variance rows; otherwise `running` supplies them. invstd lands in
   * the scratch invstd row either way. With
   * `factor` (training with running statistics) those are updated in place:
   * running = (1 - f) * running + f * batch, the variance unbiased as in torch.
   * Both in wasm memory: whole-tensor kernels. Otherwise Float32Arrays are staged through
   * cache-sized chunks, so the copies in and out cost about what the kernels' own passes cost.
   */
  forward(
    x: Operand, y: Operand, g: Geometry, sc: Scratch, weight: Operand | null, bias: Operand | null, eps: number,
    batchStats: boolean, running: Running | null, factor: number | null,
  ): void {
    const k = this.kernels;
    const { c } = g;
    const w = this.stageChannels(weight, sc.weight, c);
    const b = this.stageChannels(bias, sc.bias, c);
    if (batchStats && !g.rows && typeof x === "number" && typeof y === "number") {
      const group = Math.max(1, Math.floor(Engine.groupBytes / (g.n * g.s * 4)));
      k.forwardTrainChannelsFirst(x, y, g.n, c, g.s, 0, c, group, eps, w, b, sc.mean, sc.variance, sc.invstd, sc.coef);
    } else {
      if (batchStats) {
        this.batchStats(x, g, sc, false);
        k.forwardCoefficients(c, 0, c, sc.mean, sc.variance, 0, eps, w, b, sc.coef, sc.invstd);
      } else {
        const rm = this.stageChannels(running!.mean, sc.runningMean, c);
        const rv = this.stageChannels(running!.variance, sc.runningVar, c);
        k.forwardCoefficients(c, 0, c, rm, rv, 1, eps, w, b, sc.coef, sc.invstd);
      }
      const temps: number[] = [];
      try {
        const blocks = this.blocks(g, x, y);
        const bufX = typeof x === "number" ? 0 : this.alloc(blocks[0].length, temps);
        const bufY = typeof y === "number" ? 0 : bufX || this.alloc(blocks[0].length, temps);
        for (const blk of blocks) {
          const dst = typeof y === "number" ? y + blk.offset * 4 : bufY;
          this.normalizeBlock(this.stage(x, blk, bufX), dst, g, blk, sc);
          if (typeof y !== "number") y.set(this.memory.f32(dst, blk.length), blk.offset);
        }
      } finally {
        this.release(temps);
      }
    }
    if (batchStats && running && factor !== null) {
      const rm = this.stageChannels(running.mean, sc.runningMean, c);
      const rv = this.stageChannels(running.variance, sc.runningVar, c);
      k.updateRunning(0, c, sc.mean, sc.variance, g.count / (g.count - 1), factor, rm, rv);
      if (typeof running.mean !== "number") running.mean.set(this.memory.f32(rm, c));
      if (typeof running.variance !== "number") running.variance.set(this.memory.f32(rv, c));
    }
  }

  /**
   * Batch mean and biased variance into the scratch mean/variance rows; `exact` sums in f64 throughout.
   * A Float32Array is staged by chunks whose statistics are merged by Chan et al.'s formula.
   */
  batchStats(x: Operand, g: Geometry, sc: Scratch, exact: boolean): void {
    if (typeof x === "number") return this.statsBlock(x, g, this.whole(g), sc, exact);
    const { c } = g;
    const temps: number[] = [];
    try {
      const blocks = this.blocks(g, x);
      const buf = this.alloc(blocks[0].length, temps);
      const mean = new Float64Array(c);
      const m2 = new Float64Array(c);
      const seen = new Float64Array(c);
      for (const blk of blocks) {
        this.statsBlock(this.stage(x, blk, buf), g, blk, sc, exact);
        const bm = this.f64(sc.mean, c);
        const bv = this.f64(sc.variance, c);
        const nb = blk.count;
        for (let ch = blk.c0; ch < blk.c1; ch++) {
          chanMerge(mean, m2, ch, seen[ch], nb, bm[ch], bv[ch] * nb);
          seen[ch] += nb;
        }
      }
      this.f64(sc.mean, c).set(mean);
      this.f64(sc.variance, c).set(m2.map((v) => v / g.count));
    } finally {
      this.release(temps);
    }
  }

  /**
   * Backward pass from the f64 `mean` and `invstd` the forward normalized with: dx to `dx` (may be
   * dy); returns dweight and dbias. `training`: the statistics came from the batch, so the gradient
   * flows through them. Staging as in forward: whole tensors in wasm memory, else cache-sized chunks.
   */
  backward(
    dy: Operand, x: Operand, dx: Operand, g: Geometry, sc: Scratch, weight: Operand | null, mean: Float64Array,
    invstd: Float64Array, training: boolean,
  ): { dweight: Float32Array; dbias: Float32Array } {
    const k = this.kernels;
    const { c } = g;
    const w = this.stageChannels(weight, sc.weight, c);
    this.f64(sc.mean, c).set(mean);
    this.f64(sc.invstd, c).set(invstd);
    k.splitMeans(c, 0, c, sc.mean, sc.coef);
    const temps: number[] = [];
    try {
      const blocks = this.blocks(g, dy, x, dx);
      const size = blocks[0].length;
      const bufDy = typeof dy === "number" ? 0 : this.alloc(size, temps);
      const bufX = typeof x === "number" ? 0 : this.alloc(size, temps);
      const bufDx = typeof dx === "number" ? 0 : bufDy || this.alloc(size, temps);
      // the reductions are sums: add up the chunks' partial sums
      const sumDy = new Float64Array(c);
      const sumDyXc = new Float64Array(c);
      for (const blk of blocks) {
        this.reduceBlock(this.stage(dy, blk, bufDy), this.stage(x, blk, bufX), g, blk, sc);
        const a = this.f64(sc.sumDy, c);
        const b = this.f64(sc.sumDyXc, c);
        for (let ch = blk.c0; ch < blk.c1; ch++) {
          sumDy[ch] += a[ch];
          sumDyXc[ch] += b[ch];
        }
      }
      this.f64(sc.sumDy, c).set(sumDy);
      this.f64(sc.sumDyXc, c).set(sumDyXc);
      k.backwardCoefficients(c, 0, c, g.count, sc.sumDy, sc.sumDyXc, sc.invstd, w, training ? 1 : 0, sc.coef, sc.dweight);
      for (const blk of blocks) {
        const dst = typeof dx === "number" ? dx + blk.offset * 4 : bufDx;
        const g0 = this.stage(dy, blk, bufDy);
        if (training) this.dxBlock(g0, this.stage(x, blk, bufX), dst, g, blk, sc);
        else this.normalizeBlock(g0, dst, g, blk, sc);
        if (typeof dx !== "number") dx.set(this.memory.f32(dst, blk.length), blk.offset);
      }
    } finally {
      this.release(temps);
    }
    return { dweight: new Float32Array(this.f64(sc.dweight, c)), dbias: new Float32Array(this.f64(sc.sumDy, c)) };
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

  // Kernel calls on one block whose data starts at the given addresses. Channels-first kernels address
  // channel ch at base + (i * C + ch) * S floats, so a block of channels [c0, c1) passes base = start - c0 * S.

  private statsBlock(x: number, g: Geometry, blk: Block, sc: Scratch, exact: boolean): void {
    const e = exact ? 1 : 0;
    if (g.rows) this.kernels.statsChannelsLast(x, blk.n, g.c, 0, g.c, sc.mean, sc.variance, sc.coef, e);
    else this.kernels.statsChannelsFirst(x - blk.c0 * g.s * 4, blk.n, g.c, g.s, blk.c0, blk.c1, sc.mean, sc.variance, sc.coef, e);
  }

  private normalizeBlock(x: number, y: number, g: Geometry, blk: Block, sc: Scratch): void {
    if (g.rows) this.kernels.normalizeChannelsLast(x, y, blk.n, g.c, 0, g.c, sc.coef);
    else {
      const shift = blk.c0 * g.s * 4;
      this.kernels.normalizeChannelsFirst(x - shift, y - shift, blk.n, g.c, g.s, blk.c0, blk.c1, sc.coef);
    }
  }

  private reduceBlock(dy: number, x: number, g: Geometry, blk: Block, sc: Scratch): void {
    if (g.rows) this.kernels.backwardReduceChannelsLast(dy, x, blk.n, g.c, 0, g.c, sc.coef, sc.sumDy, sc.sumDyXc);
    else {
      const shift = blk.c0 * g.s * 4;
      this.kernels.backwardReduceChannelsFirst(dy - shift, x - shift, blk.n, g.c, g.s, blk.c0, blk.c1, sc.coef, sc.sumDy, sc.sumDyXc);
    }
  }

  private dxBlock(dy: number, x: number, dx: number, g: Geometry, blk: Block, sc: Scratch): void {
    if (g.rows) this.kernels.backwardDxChannelsLast(dy, x, dx, blk.n, g.c, 0, g.c, sc.coef);
    else {
      const shift = blk.c0 * g.s * 4;
      this.kernels.backwardDxChannelsFirst(dy - shift, x - shift, dx - shift, blk.n, g.c, g.s, blk.c0, blk.c1, sc.coef);
    }
  }
}

