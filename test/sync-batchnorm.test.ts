// Exact SyncBN across processes: three Node processes (test/sync-batchnorm/rank.mjs, over IPC with
// this process relaying allgather) train a SyncBatchNorm on their shards of each step's batch. Every
// rank must hold the same running statistics, bit for bit, and y, dx and the summed gradients must
// equal one process computing on the whole batch, within the library's bar. Shards are uneven and one
// rank's is empty in one step (it takes part with nothing). Also the split-phase functional API.
import { fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { BACKENDS, THREADS, backend, checkBar } from "./helpers.js";
import { randn, referenceBackward, referenceForward } from "./reference.js";

const RANKS = 3;
const rankScript = fileURLToPath(new URL("./sync-batchnorm/rank.mjs", import.meta.url));

interface Step {
  training: boolean;
  /** images per rank */
  split: number[];
}

/** A step's whole batch and its shards (contiguous runs of images, as a DistributedSampler gives). */
function makeStep(s: Step, k: number, image: number[], layout: "channels-first" | "channels-last", c: number) {
  const per = image.reduce((a, b) => a * b, 1);
  const n = s.split.reduce((a, b) => a + b, 0);
  const x = randn(n * per, 10 + k, 2, 0.5 + k);
  const dy = randn(n * per, 20 + k);
  let at = 0;
  const shards = s.split.map((m) => {
    const part = { shape: [m, ...image], x: Array.from(x.subarray(at * per, (at + m) * per)), dy: Array.from(dy.subarray(at * per, (at + m) * per)) };
    at += m;
    return part;
  });
  return { training: s.training, channels: c, layout, shards, whole: { shape: [n, ...image], x, dy } };
}

/** Runs the ranks as child processes, relaying allgather; resolves with each rank's results. */
function runRanks(config: object[]): Promise<Record<string, number[] | number>[][]> {
  return new Promise((resolve, reject) => {
    const results: Record<string, number[] | number>[][] = [];
    const rounds = new Map<number, unknown[]>();
    const children = Array.from({ length: RANKS }, (_, rank) =>
      fork(rankScript, [JSON.stringify(config[rank])], { serialization: "advanced", stdio: ["ignore", "inherit", "inherit", "ipc"] }),
    );
    let done = 0;
    for (const child of children) {
      child.on("error", reject);
      child.on("exit", (code) => code !== 0 && reject(new Error(`a rank exited with code ${code}`)));
      child.on("message", (m: { type: string; rank: number; round: number; part: unknown; results: never }) => {
        if (m.type === "gather") {
          const parts = rounds.get(m.round) ?? new Array(RANKS);
          parts[m.rank] = m.part;
          rounds.set(m.round, parts);
          if (Object.keys(parts).length === RANKS) for (const ch of children) ch.send({ type: "gathered", round: m.round, parts });
        } else if (m.type === "done") {
          results[m.rank] = m.results;
          if (++done === RANKS) resolve(results);
        }
      });
    }
  });
}

describe.each(BACKENDS)("SyncBatchNorm over 3 processes, %s backend", (name) => {
  it.each([
    ["channels-first", [4, 5, 3]],
    ["channels-last", [3, 2, 6]],
  ] as const)("%s: every rank the same running statistics; y, dx, gradients as one process on the whole batch", async (layout, image) => {
    const c = layout === "channels-first" ? image[0] : image[image.length - 1];
    const plan: Step[] = [
      { training: true, split: [3, 2, 4] },
      { training: true, split: [5, 1, 0] }, // rank 2 has nothing this step and still takes part
      { training: true, split: [2, 2, 2] },
      { training: false, split: [1, 3, 2] },
    ];
    const steps = plan.map((s, k) => makeStep(s, k, [...image], layout, c));
    const weight = Array.from(randn(c, 3, 0.5, 1));
    const bias = Array.from(randn(c, 4));
    const config = Array.from({ length: RANKS }, (_, rank) => ({
      rank, backend: name, threads: THREADS[rank % THREADS.length],
      steps: steps.map((s, k) => ({ ...s, whole: undefined, momentum: 0.2, weight: k === 0 ? weight : undefined, bias: k === 0 ? bias : undefined })),
    }));
    const ranks = await runRanks(config);

    // one process on the whole batch, step by step
    const bn = await backend(name);
    const single = new bn.BatchNorm(c, { layout, momentum: 0.2 });
    single.weight!.set(weight);
    single.bias!.set(bias);
    let refMean = new Float64Array(c);
    let refVar = new Float64Array(c).fill(1);
    for (const [k, step] of steps.entries()) {
      const { shape, x, dy } = step.whole;
      single.train(step.training);
      single.forward(x, shape);
      single.zeroGrad();
      single.backward(dy);
      const f = referenceForward(x, { shape, layout, weight, bias, training: step.training, momentum: 0.2, runningMean: refMean, runningVar: refVar });
      const b = referenceBackward(dy, x, { shape, layout, weight, training: step.training, mean: f.mean, invstd: f.invstd });
      const concat = (q: string) => ranks.flatMap((r) => r[k][q] as number[]);
      const sum = (q: string) => Array.from({ length: c }, (_, i) => ranks.reduce((s, r) => s + (r[k][q] as number[])[i], 0));
      expect(checkBar(`step ${k} y`, concat("y"), f.y, 0)).toBeNull();
      expect(checkBar(`step ${k} dx`, concat("dx"), b.dx, 0)).toBeNull();
      // PyTorch's SyncBatchNorm leaves each rank its own weight and bias gradients (DDP then reduces them)
      expect(checkBar(`step ${k} summed dweight`, sum("weightGrad"), b.dweight, 0)).toBeNull();
      expect(checkBar(`step ${k} summed dbias`, sum("biasGrad"), b.dbias, 0)).toBeNull();
      for (const r of ranks.slice(1)) {
        expect(r[k].runningMean, `step ${k}: every rank the same running mean`).toEqual(ranks[0][k].runningMean);
        expect(r[k].runningVar, `step ${k}: every rank the same running variance`).toEqual(ranks[0][k].runningVar);
        expect(r[k].numBatchesTracked).toBe(ranks[0][k].numBatchesTracked);
      }
      if (f.runningMean) {
        refMean = f.runningMean;
        refVar = f.runningVar!;
      }
      expect(checkBar(`step ${k} running mean`, ranks[0][k].runningMean as number[], refMean, 0)).toBeNull();
      expect(checkBar(`step ${k} running var`, ranks[0][k].runningVar as number[], refVar, 0)).toBeNull();
      expect(ranks[0][k].numBatchesTracked).toBe(single.numBatchesTracked);
    }
  }, 60_000);
});

describe.each(BACKENDS)("the split-phase functional API, %s backend", (name) => {
  it.each(THREADS)("statistics of shards merged, normalized with, and reduced for backward equal the whole batch (%i threads)", async (threads) => {
    const bn = await backend(name, threads);
    for (const layout of ["channels-first", "channels-last"] as const) {
      const image = layout === "channels-first" ? [5, 7] : [7, 5];
      const c = 5;
      const split = [4, 0, 3, 6];
      const n = split.reduce((a, b) => a + b, 0);
      const per = 35;
      const x = randn(n * per, 1, 3, 100);
      const dy = randn(n * per, 2);
      const weight = randn(c, 3, 0.5, 1);
      const bias = randn(c, 4);
      let at = 0;
      const shards = split.map((m) => {
        const s = { shape: [m, ...image], x: x.subarray(at * per, (at + m) * per), dy: dy.subarray(at * per, (at + m) * per) };
        at += m;
        return s;
      });
      const parts = shards.map((s) => bn.batchStatistics(s.x, { shape: s.shape, layout }));
      expect(parts.map((p) => p.count)).toEqual(split.map((m) => m * 7));
      const merged = bn.mergeStatistics(parts);
      // the same parts in the same order: the same bits, also after a JSON round trip (exact for finite numbers)
      const again = bn.mergeStatistics(JSON.parse(JSON.stringify(parts.map((p) => ({ count: p.count, mean: Array.from(p.mean), m2: Array.from(p.m2) })))));
      expect(Array.from(again.mean)).toEqual(Array.from(merged.mean));
      expect(Array.from(again.m2)).toEqual(Array.from(merged.m2));
      const shape = [n, ...image];
      const ref = referenceForward(x, { shape, layout, weight, bias, runningMean: new Float64Array(c), runningVar: new Float64Array(c).fill(1) });
      expect(merged.count).toBe(n * 7);
      expect(checkBar("merged mean", merged.mean, ref.mean, 0)).toBeNull();
      expect(checkBar("merged variance", Array.from(merged.m2, (v) => v / merged.count), ref.variance, 0)).toBeNull();

      const ys: number[] = [];
      const dxs: number[] = [];
      let runningMean = new Float32Array(c), runningVar = new Float32Array(c).fill(1);
      const reduced = { sumDy: new Float64Array(c), sumDyXc: new Float64Array(c) };
      const forwards = shards.map((s) => {
        // every rank updates its own copy of the running statistics with the merged ones
        const rm = new Float32Array(c), rv = new Float32Array(c).fill(1);
        const f = bn.batchNorm(s.x, { shape: s.shape, layout, weight, bias, runningMean: rm, runningVar: rv, statistics: merged });
        [runningMean, runningVar] = [rm, rv];
        ys.push(...f.y);
        const r = bn.batchNormBackwardReduce(s.dy, s.x, { shape: s.shape, layout, mean: f.mean, invstd: f.invstd });
        for (let i = 0; i < c; i++) {
          reduced.sumDy[i] += r.sumDy[i];
          reduced.sumDyXc[i] += r.sumDyXc[i];
        }
        return f;
      });
      expect(checkBar("y", ys, ref.y, 0)).toBeNull();
      expect(checkBar("runningMean", runningMean, ref.runningMean!, 0)).toBeNull();
      expect(checkBar("runningVar", runningVar, ref.runningVar!, 0)).toBeNull();
      const refB = referenceBackward(dy, x, { shape, layout, weight, mean: ref.mean, invstd: ref.invstd });
      let dweight: Float32Array | null = null;
      shards.forEach((s, i) => {
        const b = bn.batchNormBackward(s.dy, s.x, { shape: s.shape, layout, weight, mean: forwards[i].mean, invstd: forwards[i].invstd, reduced, count: merged.count });
        dxs.push(...b.dx);
        dweight = b.dweight;
        expect(checkBar("dbias from the summed reduction", b.dbias, refB.dbias, 0)).toBeNull();
      });
      expect(checkBar("dx", dxs, refB.dx, 0)).toBeNull();
      expect(checkBar("dweight from the summed reduction", dweight!, refB.dweight, 0)).toBeNull();
    }
  });

  it("rejects bad parts and options, naming them", async () => {
    const bn = await backend(name);
    const x = randn(12, 1);
    const p = bn.batchStatistics(x, { shape: [4, 3] });
    expect(() => bn.mergeStatistics([])).toThrow(/^parts: expected a non-empty array/);
    expect(() => bn.mergeStatistics([p, { ...p, mean: p.mean.subarray(1) }])).toThrow(/^parts\[1\]\.mean: expected length 3/);
    expect(() => bn.mergeStatistics([p, { ...p, count: -1 }])).toThrow(/^parts\[1\]\.count: expected a non-negative integer/);
    expect(() => bn.batchNorm(x, { shape: [4, 3], statistics: { ...p, count: 1 } })).toThrow(/^statistics\.count: expected more than 1 value per channel/);
    expect(() => bn.batchNorm(x, { shape: [4, 3], statistics: p, training: false })).toThrow(/^statistics: only with training/);
    const f = bn.batchNorm(x, { shape: [4, 3] });
    expect(() => bn.batchNormBackward(x, x, { shape: [4, 3], mean: f.mean, invstd: f.invstd, reduced: { sumDy: new Float64Array(3), sumDyXc: new Float64Array(3) } })).toThrow(/^count: required with reduced/);
  });
});

describe.each(BACKENDS)("SyncBatchNorm's own rules, %s backend", (name) => {
  it("needs allgather, refuses ghost batches and renorm, is async in training mode, and acts alone in eval mode", async () => {
    const bn = await backend(name);
    expect(() => new bn.SyncBatchNorm(3, {} as never)).toThrow(/^allgather: expected a function/);
    const allgather = async (part: unknown) => [part];
    expect(() => new bn.SyncBatchNorm(3, { allgather, virtualBatchSize: 2 } as never)).toThrow(/^virtualBatchSize: not available on SyncBatchNorm/);
    expect(() => new bn.SyncBatchNorm(3, { allgather, renorm: { rMax: 3, dMax: 5 } } as never)).toThrow(/^renorm: not available on SyncBatchNorm/);
    expect(() => new bn.SyncBatchNorm(3, { allgather, momentum: 2 })).toThrow(/^momentum: expected a number in \[0, 1\]/);
    const layer = new bn.SyncBatchNorm(3, { allgather });
    const x = randn(24, 1, 2, 1);
    expect(() => layer.forward(x, [8, 3])).toThrow(/^forward: a SyncBatchNorm in training mode exchanges statistics/);
    // a group of one is plain BN
    const plain = new bn.BatchNorm(3);
    const y = await layer.forwardAsync(x, [8, 3]);
    expect(Array.from(y)).toEqual(Array.from(plain.forward(x, [8, 3])));
    expect(() => layer.backward(x)).toThrow(/^backward: after a training-mode forward a SyncBatchNorm exchanges sums/);
    const dx = await layer.backwardAsync(x);
    expect(Array.from(dx)).toEqual(Array.from(plain.backward(x)));
    expect(Array.from(layer.weightGrad!)).toEqual(Array.from(plain.weightGrad!));
    await expect(new bn.SyncBatchNorm(3, { allgather: async () => [{ count: 1, mean: [0, 0, 0], m2: [0, 0, 0] }] }).forwardAsync(randn(3, 1), [1, 3]))
      .rejects.toThrow(/^Expected more than 1 value per channel when training, got 1 over all ranks/);
    await expect(new bn.SyncBatchNorm(3, { allgather: async () => [{ count: 4, mean: [0, 0], m2: [0, 0] }] }).forwardAsync(x, [8, 3]))
      .rejects.toThrow(/^parts\[0\]\.mean: expected length 3/);
    layer.eval();
    expect(Array.from(layer.forward(x, [8, 3]))).toEqual(Array.from(plain.eval().forward(x, [8, 3])));
  });
});
