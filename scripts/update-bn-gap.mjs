// How far torch.optim.swa_utils.update_bn's statistics are from the exact population statistics, on
// batches of unequal size. update_bn resets a BN's running statistics, sets momentum to None (the
// cumulative average) and runs every batch through it in training mode, so its answer is the
// equal-weight average of the per-batch means and of the per-batch unbiased variances; a
// `bn.BatchNorm` with `momentum: null` does exactly that (as PyTorch, test/module-semantics.test.ts).
// The exact answer is the same pass with startStatistics()/finishStatistics(); the truth is float64
// over the whole data. Prints one row per data set: each method's error in the mean (in standard
// deviations) and in the unbiased variance (relative).
//   npm run build && node scripts/update-bn-gap.mjs
import { init } from "../dist/index.js";
import { randn } from "../test/reference.js";

const bn = await init({ backend: "simd", threads: 1 });

/** Batches of `sizes` samples of BatchNorm1d input [n, 1, length(b)], values from `value(b)`. */
function dataset(sizes, length, value) {
  return sizes.map((n, b) => {
    const l = length(b);
    const x = randn(n * l, 1000 + b).map((z) => value(b, z));
    return { x, shape: [n, 1, l] };
  });
}

/** Mean and unbiased variance of all the values, in float64. */
function truth(batches) {
  let n = 0;
  let sum = 0;
  for (const { x } of batches) for (const v of x) (n += 1), (sum += v);
  const mean = sum / n;
  let m2 = 0;
  for (const { x } of batches) for (const v of x) m2 += (v - mean) ** 2;
  return { n, mean, variance: m2 / (n - 1) };
}

function report(name, batches) {
  const t = truth(batches);
  const swa = new bn.BatchNorm(1, { momentum: null }); // update_bn's procedure
  for (const { x, shape } of batches) swa.forward(x, shape);
  // exact, in one training pass (the forward's own statistics) and in eval mode (a statistics pass)
  const exact = [true, false].map((training) => {
    const layer = new bn.BatchNorm(1).train(training);
    layer.startStatistics();
    for (const { x, shape } of batches) layer.forward(x, shape);
    return layer.finishStatistics(); // float64; runningMean/runningVar hold it rounded to float32
  });
  const sd = Math.sqrt(t.variance);
  const err = (mean, variance) => [((mean - t.mean) / sd).toExponential(1), ((variance - t.variance) / t.variance).toExponential(1)];
  const sizes = batches.map((b) => b.x.length);
  const row = [err(swa.runningMean[0], swa.runningVar[0]), ...exact.map((s) => err(s.mean[0], s.variance({ unbiased: true })[0]))];
  console.log(`| ${name} | ${batches.length}, ${Math.min(...sizes)}-${Math.max(...sizes)} | ${row.map((e) => e.join(", ")).join(" | ")} |`);
}

console.log("| data | batches, values per batch | update_bn | exact, train mode | exact, eval mode |");
console.log("|---|---|---|---|---|");
const iid = (_, z) => 3 + 2 * z;
report("1000 shuffled samples N(3, 2²), batch 64 (last 40)", dataset([...Array(15).fill(64), 40], () => 1, iid));
report("1030 shuffled samples N(3, 2²), batch 128 (last 6)", dataset([...Array(8).fill(128), 6], () => 1, iid));
// sequences bucketed by length (BatchNorm1d over [N, C, L]): 16 per batch, L from 8 to 512, and
// longer sequences with larger values (mean 0.01 * L), as when the feature grows with the length
const lengths = [8, 16, 32, 64, 128, 256, 512];
report(
  "16 sequences per batch, bucketed by length L = 8-512, mean 0.01 L, sd 1",
  dataset(Array(lengths.length).fill(16), (b) => lengths[b], (b, z) => 0.01 * lengths[b] + z),
);
// a last partial batch that differs: the data set's tail (e.g. unshuffled, or another source)
report(
  "960 samples N(0, 1) in batches of 64, then 8 samples N(2, 1)",
  dataset([...Array(15).fill(64), 8], () => 1, (b, z) => (b === 15 ? 2 : 0) + z),
);
await bn.terminate();
