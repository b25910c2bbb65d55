// The pointer-level passes shared by the functional API, the BatchNorm module and RunningStats:
// per-channel scratch, staging of inputs and outputs, kernel dispatch by layout, and the running
// statistics update. Callers validate first; nothing here checks arguments.
import type { BackendName, Kernels } from "./kernels.js";
import { WasmMemory, WasmTensor } from "./memory.js";
import type { Geometry, Tensor } from "./validate.js";

const view = (t: Tensor): Float32Array => (t instanceof WasmTensor ? t.data : t);

/** Rows in the coefficient block; the first three (mh, ml, invstd) are read back (assembly/coefficients.ts). */
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

/** Running statistics to read (eval) or update (training, when `factor` is a number). */
export interface Running {
  mean: Tensor;
  variance: Tensor;
}

export class Engine {
  /**
   * Input bytes per channel group in the channels-first training forward, which should stay in cache
   * between its statistics and normalize passes. Measured on a 32 MiB-L3 EPYC (S1, ratio to a copy):
   * 1 MiB 1.80, 4 MiB 1.44, 16 MiB 1.34, whole tensor 1.31: long streams beat L2-sized groups, so
   * groups are sized to stay within L3.
   */
  static groupBytes = 16 << 20;

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
   * The forward's mean (f32), its low part (mean - f32(mean)) and invstd (f32), copied from the
   * coefficient block in one allocation (views of one buffer: per-call overhead matters on small tensors).
   */
  meanAndInvstd(sc: Scratch): { mean: Float32Array; meanLow: Float32Array; invstd: Float32Array } {
    const stride = (sc.c + 3) & ~3;
    const rows = this.memory.f32(sc.coef, 2 * stride + sc.c).slice();
    return { mean: rows.subarray(0, sc.c), meanLow: rows.subarray(stride, stride + sc.c), invstd: rows.subarray(2 * stride) };
  }

  /** Address of `t`'s data in wasm memory; a Float32Array is copied into a new block listed in `temps`. */
  input(t: Tensor, temps: number[]): number {
    if (t instanceof WasmTensor) return t.ptr;
    const ptr = this.memory.alloc(t.length * 4);
    temps.push(ptr);
    this.memory.f32(ptr, t.length).set(t);
    return ptr;
  }

  /** Address the kernel writes `length` results to: a WasmTensor `out` itself, else a temp block. */
  output(out: Tensor | null, length: number, temps: number[]): number {
    if (out instanceof WasmTensor) return out.ptr;
    const ptr = this.memory.alloc(length * 4);
    temps.push(ptr);
    return ptr;
  }

  /** The results at `ptr` as the caller sees them: `out` (filled), or a new Float32Array. */
  result(out: Tensor | null, ptr: number, length: number): Float32Array {
    if (out instanceof WasmTensor) return out.data;
    const src = this.memory.f32(ptr, length);
    if (out) {
      out.set(src);
      return out;
    }
    return src.slice();
  }

  release(temps: number[]): void {
    for (const ptr of temps) this.memory.release(ptr);
  }

  /** Writes optional weight and bias into scratch (or points at them); returns their addresses, 0 for none. */
  private params(sc: Scratch, weight: Tensor | null, bias: Tensor | null): [number, number] {
    return [this.stageChannels(weight, sc.weight, sc.c), this.stageChannels(bias, sc.bias, sc.c)];
  }

  /** A per-channel array in wasm: its own address (WasmTensor) or a copy in `slot`; 0 for none. */
  private stageChannels(t: Tensor | null, slot: number, c: number): number {
    if (!t) return 0;
    if (t instanceof WasmTensor) return t.ptr;
    this.memory.f32(slot, c).set(t);
    return slot;
  }

  /**
   * Forward pass from `x` to `y` (addresses; y may equal x). With `batchStats` the statistics come
   * from the batch and land in the scratch mean/variance/invstd rows; otherwise `running` supplies
   * them. With `factor` (training with running statistics) those are updated in place:
   * running = (1 - f) * running + f * batch, the variance unbiased as in torch.
   */
  forward(
    x: number, y: number, g: Geometry, sc: Scratch, weight: Tensor | null, bias: Tensor | null, eps: number,
    batchStats: boolean, running: Running | null, factor: number | null,
  ): void {
    const k = this.kernels;
    const { n, c, s, count } = g;
    const [w, b] = this.params(sc, weight, bias);
    if (batchStats && !g.rows) {
      const group = Math.max(1, Math.floor(Engine.groupBytes / (n * s * 4)));
      k.forwardTrainChannelsFirst(x, y, n, c, s, 0, c, group, eps, w, b, sc.mean, sc.variance, sc.invstd, sc.coef);
    } else {
      if (batchStats) k.statsChannelsLast(x, count, c, 0, c, sc.mean, sc.variance, sc.coef, 0);
      else {
        this.f64(sc.mean, c).set(view(running!.mean));
        this.f64(sc.variance, c).set(view(running!.variance));
      }
      k.forwardCoefficients(c, 0, c, sc.mean, sc.variance, eps, w, b, sc.coef, sc.invstd);
      if (g.rows) k.normalizeChannelsLast(x, y, count, c, 0, c, sc.coef);
      else k.normalizeChannelsFirst(x, y, n, c, s, 0, c, sc.coef);
    }
    if (batchStats && running && factor !== null) {
      const rm = this.stageChannels(running.mean, sc.runningMean, c);
      const rv = this.stageChannels(running.variance, sc.runningVar, c);
      k.updateRunning(0, c, sc.mean, sc.variance, count / (count - 1), factor, rm, rv);
      if (!(running.mean instanceof WasmTensor)) running.mean.set(this.memory.f32(rm, c));
      if (!(running.variance instanceof WasmTensor)) running.variance.set(this.memory.f32(rv, c));
    }
  }

  /** Batch mean and biased variance, summed entirely in f64, into the scratch mean/variance rows. */
  exactStats(x: number, g: Geometry, sc: Scratch): void {
    if (g.rows) this.kernels.statsChannelsLast(x, g.count, g.c, 0, g.c, sc.mean, sc.variance, sc.coef, 1);
    else this.kernels.statsChannelsFirst(x, g.n, g.c, g.s, 0, g.c, sc.mean, sc.variance, sc.coef, 1);
  }

  /**
   * Backward pass: dx at `dx` (may equal dy); dweight and dbias in the scratch dweight/sumDy rows.
   * The caller has written the f64 mean and invstd the forward normalized with into scratch.
   * `training`: the statistics came from the batch, so the gradient flows through them.
   */
  backward(dy: number, x: number, dx: number, g: Geometry, sc: Scratch, weight: Tensor | null, training: boolean): void {
    const k = this.kernels;
    const { n, c, s, count } = g;
    const w = this.stageChannels(weight, sc.weight, c);
    k.splitMeans(c, 0, c, sc.mean, sc.coef);
    if (g.rows) k.backwardReduceChannelsLast(dy, x, count, c, 0, c, sc.coef, sc.sumDy, sc.sumDyXc);
    else k.backwardReduceChannelsFirst(dy, x, n, c, s, 0, c, sc.coef, sc.sumDy, sc.sumDyXc);
    k.backwardCoefficients(c, 0, c, count, sc.sumDy, sc.sumDyXc, sc.invstd, w, training ? 1 : 0, sc.coef, sc.dweight);
    if (training) {
      if (g.rows) k.backwardDxChannelsLast(dy, x, dx, count, c, 0, c, sc.coef);
      else k.backwardDxChannelsFirst(dy, x, dx, n, c, s, 0, c, sc.coef);
    } else if (g.rows) k.normalizeChannelsLast(dy, dx, count, c, 0, c, sc.coef);
    else k.normalizeChannelsFirst(dy, dx, n, c, s, 0, c, sc.coef);
  }
}

export { view };
