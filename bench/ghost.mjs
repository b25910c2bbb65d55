// Ghost batches against a plain call: node bench/ghost.mjs (after npm run build). S1 [32,64,56,56] training, WasmTensors, plain vs virtualBatchSize 8 and 1, threads 1 and 2; medians of 15 interleaved
import { init } from "../dist/index.js";
const shape = [32, 64, 56, 56], len = shape.reduce((a, b) => a * b);
const med = (a) => [...a].sort((p, q) => p - q)[a.length >> 1];
for (const threads of [1, 2]) {
  const bn = await init({ threads });
  const x = bn.alloc(len); for (let i = 0; i < len; i++) x.data[i] = Math.sin(i);
  const y = bn.alloc(len);
  const t = { plain: [], v8: [], v1: [] };
  for (let r = 0; r < 15; r++) for (const [k, v] of [["plain", null], ["v8", 8], ["v1", 1]]) {
    const t0 = performance.now(); bn.batchNorm(x, { shape, out: y, virtualBatchSize: v }); t[k].push(performance.now() - t0);
  }
  console.log(`threads ${threads}: ` + Object.entries(t).map(([k, a]) => `${k} ${med(a).toFixed(2)} ms`).join(", "));
}
process.exit(0);
