// One rank of test/sync-batchnorm.test.ts, run as a child process: trains a SyncBatchNorm on its
// shard of each step's batch, exchanging statistics with the other ranks through the parent over
// Node's IPC channel (the transport a user would plug in: any allgather works), and reports its
// outputs, gradients and running statistics back.
import { init } from "../../dist/index.js";

const { rank, backend, threads, steps } = JSON.parse(process.argv[2]);
const bn = await init({ backend, threads });

// allgather over IPC: send this rank's part, wait for every rank's parts of the same round, in rank order
let round = 0;
const waiting = new Map();
process.on("message", (m) => {
  if (m.type === "gathered") {
    waiting.get(m.round)(m.parts);
    waiting.delete(m.round);
  }
});
const allgather = (part) =>
  new Promise((resolve) => {
    const r = round++;
    waiting.set(r, resolve);
    process.send({ type: "gather", rank, round: r, part });
  });

const first = steps[0];
const layer = new bn.SyncBatchNorm(first.channels, { layout: first.layout, momentum: first.momentum, allgather });
layer.weight.set(first.weight);
layer.bias.set(first.bias);
const results = [];
for (const step of steps) {
  const { x, dy } = step.shards[rank];
  layer.train(step.training);
  const y = await layer.forwardAsync(Float32Array.from(x), step.shards[rank].shape);
  layer.zeroGrad();
  const dx = await layer.backwardAsync(Float32Array.from(dy));
  results.push({
    y: Array.from(y),
    dx: Array.from(dx),
    weightGrad: Array.from(layer.weightGrad),
    biasGrad: Array.from(layer.biasGrad),
    runningMean: Array.from(layer.runningMean),
    runningVar: Array.from(layer.runningVar),
    numBatchesTracked: layer.numBatchesTracked,
  });
}
process.send({ type: "done", rank, results });
await bn.terminate();
process.disconnect();
