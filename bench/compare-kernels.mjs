// Same-process A/B of the reduction kernels (statistics and backward reduce) of the current build
// against the build of another git revision: both SIMD builds load into one process, each with its
// own memory holding the same data, and are timed interleaved (median of REPS rounds), so machine
// noise hits both alike. Each is checked against the float64 reference first.
//   node bench/compare-kernels.mjs <git-rev> [S1,S2,S5]
// Builds that predate the exported COEF_ROWS took the mean of the backward reduce as the f32 mh/ml
// rows of the coefficient block; they are called that way.
import { execSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import asc from "assemblyscript/asc";
import { WORKLOADS, channelsOf, lengthOf } from "./workloads.js";
import { randn, referenceForward, referenceBackward } from "../test/reference.js";
import { median } from "./harness.js";

const rev = process.argv[2];
if (!rev) throw new Error("usage: node bench/compare-kernels.mjs <git-rev> [S1,S2,S5]");
const ids = (process.argv[3] ?? "S1,S2,S5").split(",");
const REPS = 15;

async function build(dir) {
  const { error, stderr } = await asc.main(["--config", join(dir, "asconfig.json"), "--target", "simd", "--outFile", join(dir, "out.wasm"), "--textFile", join(dir, "out.wat")], {});
  if (error) throw new Error(stderr.toString());
  return readFileSync(join(dir, "out.wasm"));
}

const tmp = mkdtempSync(join(tmpdir(), "bn-ab-"));
execSync(`git archive ${rev} assembly asconfig.json | tar -x -C ${tmp}`);
const builds = { [rev]: await build(tmp), current: readFileSync("build/simd.wasm") };
rmSync(tmp, { recursive: true, force: true });

const biggest = Math.max(...WORKLOADS.filter((w) => ids.includes(w.id)).map(lengthOf));
async function load(bytes) {
  const memory = new WebAssembly.Memory({ initial: Math.ceil((biggest * 8 + (64 << 20)) / 65536) });
  const { instance } = await WebAssembly.instantiate(bytes, { env: { memory } });
  const k = instance.exports;
  const base = (k.heapBase() + 63) & ~63;
  return { k, memory, base, newReduce: "COEF_ROWS" in k };
}
const impls = Object.fromEntries(await Promise.all(Object.entries(builds).map(async ([n, b]) => [n, await load(b)])));

for (const w of WORKLOADS.filter((w) => ids.includes(w.id))) {
  const len = lengthOf(w), c = channelsOf(w);
  const rows = w.layout === "channels-last" || w.shape.length === 2;
  const n = w.shape[0], s = rows ? 1 : len / (n * c), count = len / c;
  const x = randn(len, 1, 2, 0.5), dy = randn(len, 2);
  const ref = referenceForward(x, { shape: w.shape, layout: w.layout });
  const refB = referenceBackward(dy, x, { shape: w.shape, layout: w.layout, mean: ref.mean, invstd: ref.invstd });
  const calls = {};
  for (const [name, im] of Object.entries(impls)) {
    const { k, memory, base } = im;
    // x, dy, then scratch: mean, variance, sumDy, sumDyXc (f64), coefficient block (12 rows)
    const px = base, pdy = px + len * 4, pm = pdy + len * 4, pv = pm + c * 8, ps1 = pv + c * 8, ps2 = ps1 + c * 8, pcoef = ps2 + c * 8;
    new Float32Array(memory.buffer, px, len).set(x);
    new Float32Array(memory.buffer, pdy, len).set(dy);
    // builds with the exported COEF_ROWS also take a `total` output (0: none)
    const extra = im.newReduce ? [0] : [];
    const stats = () => (rows ? k.statsChannelsLast(px, count, c, 0, c, pm, pv, ...extra, pcoef, 0) : k.statsChannelsFirst(px, n, c, s, 0, c, pm, pv, ...extra, pcoef, 0));
    const reduce = () => {
      const mean = im.newReduce ? pm : pcoef;
      if (im.newReduce) { new Float64Array(memory.buffer, ps1, c).fill(0); new Float64Array(memory.buffer, ps2, c).fill(0); }
      if (rows) k.backwardReduceChannelsLast(pdy, px, count, c, 0, c, mean, ps1, ps2);
      else k.backwardReduceChannelsFirst(pdy, px, n, c, s, 0, c, mean, ps1, ps2);
    };
    stats();
    const mean = new Float64Array(memory.buffer, pm, c).slice(), variance = new Float64Array(memory.buffer, pv, c).slice();
    if (!im.newReduce) k.splitMeans(c, 0, c, pm, pcoef);
    reduce();
    const sumDy = new Float64Array(memory.buffer, ps1, c).slice(), sumDyXc = new Float64Array(memory.buffer, ps2, c).slice();
    const rel = (a, e) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - e[i])), 0) / e.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    const dweight = sumDyXc.map((v, i) => v * ref.invstd[i]);
    console.log(`${w.id} ${name}: max error / max|ref|: mean ${rel(mean, ref.mean).toExponential(1)}, variance ${rel(variance, ref.variance).toExponential(1)}, dbias ${rel(sumDy, refB.dbias).toExponential(1)}, dweight ${rel(dweight, refB.dweight).toExponential(1)}`);
    calls[name] = { stats, reduce };
  }
  const times = {};
  for (let r = 0; r < REPS; r++) {
    for (const [name, f] of Object.entries(calls)) {
      for (const part of ["stats", "reduce"]) {
        const t = performance.now();
        f[part]();
        (times[`${part} ${name}`] ??= []).push(performance.now() - t);
      }
    }
  }
  const line = ["stats", "reduce"].map((part) => {
    const before = median(times[`${part} ${rev}`]), after = median(times[`${part} current`]);
    return `${part} ${before.toFixed(3)} -> ${after.toFixed(3)} ms (${(after / before).toFixed(2)}x)`;
  });
  console.log(`${w.id} ${w.name}: ${line.join(", ")}`);
}
