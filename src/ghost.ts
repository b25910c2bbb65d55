// Ghost (virtual) batches, the `virtualBatchSize` option: a training batch cut into consecutive chunks
// of v samples along N (the last chunk holds the rest), each normalized with its own statistics, the
// running statistics updated once per chunk in order, and backward per chunk, exactly as calling
// BatchNorm on each chunk in turn (pytorch-tabnet's GBN; Keras' virtual_batch_size). See: Hoffer,
// Hubara & Soudry, "Train longer, generalize better", 2017. A chunk of an [N, ...] tensor is a
// contiguous range in either layout, so the engine's passes run on each chunk's sub-geometry in place
// (an address offset in wasm memory, a subarray of a Float32Array): no copies.
import type { Engine, ForwardSpec, Operand, ReluMask, Reweight, Scratch, Statistics, Steps } from "./engine.js";
import type { Geometry } from "./validate.js";

/** One ghost batch: its geometry and its first value's index in the whole tensor. */
export interface Chunk {
  g: Geometry;
  offset: number;
}

/** How the forward treated one chunk with batch renormalization (src/renorm.ts): r and d, and the weight w * r it normalized with. */
export interface RenormChunk {
  r: Float64Array;
  d: Float64Array;
  weight: Float32Array;
  /** b + w * d: with the weight, what a fused ReLU's mask is rebuilt from */
  bias: Float32Array;
}

/**
 * The ghost batches of `g` for batch size `v`: ceil(N / v) chunks (one for v null or v >= N; N = 0 is
 * one empty chunk), each with its own geometry.
 */
export function chunksOf(g: Geometry, v: number | null): Chunk[] {
  if (v === null || v >= g.n) return [{ g, offset: 0 }];
  const perSample = g.length / g.n;
  const out: Chunk[] = [];
  for (let n0 = 0; n0 < g.n; n0 += v) {
    const n = Math.min(v, g.n - n0);
    const length = n * perSample;
    out.push({ g: { ...g, shape: [n, ...g.shape.slice(1)], length, n, count: (g.count / g.n) * n }, offset: n0 * perSample });
  }
  return out;
}

/** Chunk `ch` of a tensor, in place: an address offset in wasm memory, else a subarray. */
export function chunkOf(t: Operand, ch: Chunk): Operand {
  return typeof t === "number" ? t + ch.offset * 4 : t.subarray(ch.offset, ch.offset + ch.g.length);
}

/** Per-channel f64 rows of every chunk, chunk-major (chunks * C). */
export function concat(rows: Float64Array[]): Float64Array {
  if (rows.length === 1) return rows[0];
  const out = new Float64Array(rows.reduce((n, r) => n + r.length, 0));
  rows.forEach((r, k) => out.set(r, k * r.length));
  return out;
}

/**
 * The engine's forward on each chunk in turn; returns each chunk's statistics. `step(k)` gives chunk k's
 * running-average factor and renormalization hook; it is called when chunk k starts, after the
 * chunks before it updated the running statistics; `o` holds the rest of each chunk's ForwardSpec.
 */
export function* forwardChunks(
  engine: Engine, x: Operand, y: Operand, chunks: readonly Chunk[], sc: Scratch, o: Omit<ForwardSpec, "factor" | "reweight">,
  step: (k: number) => { factor: number | null; reweight: Reweight | null },
): Steps<Statistics[]> {
  const stats: Statistics[] = [];
  for (const [k, ch] of chunks.entries()) {
    stats.push(yield* engine.forward(chunkOf(x, ch), chunkOf(y, ch), ch.g, sc, { ...o, ...step(k) }));
  }
  return stats;
}

/**
 * The engine's backward on each chunk in turn, from the forward's per-chunk `mean` and `invstd`
 * (chunk-major); dweight and dbias summed in f64. With `renorm[k]` (null: plain) chunk k runs with weight w * r_k and
 * its dweight is r_k * sum(dy * xhat) + d_k * sum(dy) (r and d constants). `relu`: through a fused
 * ReLU, given the forward's weight and bias (a renormalized chunk's own w * r and b + w * d).
 */
export function* backwardChunks(
  engine: Engine, dy: Operand, x: Operand, dx: Operand, chunks: readonly Chunk[], sc: Scratch, weight: Operand | null,
  mean: Float64Array, invstd: Float64Array, training: boolean, renorm: readonly (RenormChunk | null)[] | null,
  relu: ReluMask | null = null,
): Steps<{ dweight: Float64Array; dbias: Float64Array }> {
  const c = sc.c;
  const dweight = new Float64Array(c);
  const dbias = new Float64Array(c);
  for (const [k, ch] of chunks.entries()) {
    const rows = (a: Float64Array) => a.subarray(k * c, (k + 1) * c);
    const rn = renorm?.[k];
    const w = rn ? rn.weight : weight;
    // a renormalized chunk's ReLU clipped the output of its own weight and bias
    const mask = relu && rn ? { weight: rn.weight, bias: rn.bias } : relu;
    const o = { weight: w, mean: rows(mean), invstd: rows(invstd), training, relu: mask };
    const g = yield* engine.backward(chunkOf(dy, ch), chunkOf(x, ch), chunkOf(dx, ch), ch.g, sc, o);
    for (let i = 0; i < c; i++) {
      dweight[i] += rn ? rn.r[i] * g.dweight[i] + rn.d[i] * g.dbias[i] : g.dweight[i];
      dbias[i] += g.dbias[i];
    }
  }
  return { dweight, dbias };
}
