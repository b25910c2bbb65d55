// Where the time goes: each op of the zero-copy SIMD path split into its kernels, called directly
// (bn's engine), next to a copy of the tensor (one read + one write) measured in the same run.
// A read-only pass (stats, backward reduce reads two tensors) at memory speed costs about half a
// copy per tensor read; a read + write pass (normalize, dx) about one copy.
//   node bench/profile.mjs [S1,S2,S5]
import { init } from "../dist/index.js";
import { WORKLOADS, channelsOf, lengthOf } from "./workloads.js";
import { randn } from "../test/reference.js";
import { median } from "./harness.js";

const ids = (process.argv[2] ?? "S1,S2,S5").split(",");
const bn = await init({ backend: "simd" });
const engine = bn.engine; // the pointer-level path behind the API (TypeScript-private)
const k = engine.kernels;
const REPS = 21;

for (const w of WORKLOADS.filter((w) => ids.includes(w.id))) {
  const len = lengthOf(w);
  const c = channelsOf(w);
  const rows = w.layout === "channels-last" || w.shape.length === 2;
  const n = w.shape[0];
  const s = rows ? 1 : len / (n * c);
  const count = len / c;
  const x = bn.alloc(len), y = bn.alloc(len), dy = bn.alloc(len);
  x.data.set(randn(len, 1));
  dy.data.set(randn(len, 2));
  const sc = engine.scratch(c);
  const parts = {
    "copy (yardstick)": () => y.data.set(x.data),
    "stats": () => (rows ? k.statsChannelsLast(x.ptr, count, c, 0, c, sc.mean, sc.variance, 0, sc.coef, 0) : k.statsChannelsFirst(x.ptr, n, c, s, 0, c, sc.mean, sc.variance, 0, sc.coef, 0)),
    "coefficients": () => k.forwardCoefficients(c, 0, c, sc.mean, sc.variance, 0, 1e-5, 0, 0, sc.coef, sc.invstd),
    "normalize": () => (rows ? k.normalizeChannelsLast(x.ptr, y.ptr, count, c, 0, c, sc.coef) : k.normalizeChannelsFirst(x.ptr, y.ptr, n, c, s, 0, c, sc.coef)),
    "fused train (channels-first)": () => !rows && k.forwardTrainChannelsFirst(x.ptr, y.ptr, n, c, s, 0, c, Math.max(1, Math.floor((16 << 20) / (n * s * 4))), 1e-5, 0, 0, sc.mean, sc.variance, sc.invstd, sc.coef),
    "backward reduce": () => (rows ? k.backwardReduceChannelsLast(dy.ptr, x.ptr, count, c, 0, c, sc.mean, sc.sumDy, sc.sumDyXc) : k.backwardReduceChannelsFirst(dy.ptr, x.ptr, n, c, s, 0, c, sc.mean, sc.sumDy, sc.sumDyXc)),
    "backward dx": () => (rows ? k.backwardDxChannelsLast(dy.ptr, x.ptr, y.ptr, count, c, 0, c, sc.coef) : k.backwardDxChannelsFirst(dy.ptr, x.ptr, y.ptr, n, c, s, 0, c, sc.coef)),
  };
  parts.stats();
  parts.coefficients();
  k.splitMeans(c, 0, c, sc.mean, sc.coef);
  parts["backward reduce"]();
  k.backwardCoefficients(c, 0, c, count, sc.sumDy, sc.sumDyXc, sc.invstd, 0, 1, sc.coef, sc.dweight);
  const times = Object.fromEntries(Object.keys(parts).map((p) => [p, []]));
  for (let r = 0; r < REPS; r++) {
    for (const [name, f] of Object.entries(parts)) {
      const t = performance.now();
      f();
      times[name].push(performance.now() - t);
    }
  }
  const copy = median(times["copy (yardstick)"]);
  console.log(`\n${w.id} ${w.name} (${((len * 4) / 2 ** 20).toFixed(1)} MiB): median ms and ratio to the copy`);
  for (const [name, t] of Object.entries(times)) {
    if (name.startsWith("fused") && rows) continue;
    const m = median(t);
    console.log(`  ${name.padEnd(30)} ${m.toFixed(3).padStart(8)}  ${(m / copy).toFixed(2)}x`);
  }
  for (const t of [x, y, dy]) t.free();
}
