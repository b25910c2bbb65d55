// Run by test/reclaim.test.ts as `node --expose-gc test/gc/reclaim.mjs <dist/index.js> <backend>`:
// drops WasmTensors and modules without freeing them and reports, as JSON on stdout, whether garbage
// collection gave their wasm blocks back. gc() is asked up to `ROUNDS` times, each followed by a
// macrotask turn, in which FinalizationRegistry callbacks run.
const [entry, backendName] = process.argv.slice(2);
const { init } = await import(entry);
const bn = await init({ backend: backendName });
const ROUNDS = 200;

const inUse = () => bn.memoryStats().inUse;
const turn = () => new Promise((resolve) => setTimeout(resolve, 0));

/** Collects garbage until `done()` holds, or ROUNDS attempts; returns whether it held. */
async function collectUntil(done) {
  for (let i = 0; i < ROUNDS; i++) {
    globalThis.gc();
    await turn();
    if (done()) return true;
  }
  return done();
}

/** A few rounds of collection, for what must survive them. */
async function collectSome() {
  for (let i = 0; i < 20; i++) {
    globalThis.gc();
    await turn();
  }
}

bn.batchNorm(new Float32Array(8), { shape: [2, 4] }); // allocates the per-channel scratch, which stays
const report = {};
const base = inUse();

// a WasmTensor dropped without free()
(() => {
  bn.alloc(1 << 20).data[0] = 1;
})();
report.tensorHeldBeforeGC = inUse() > base;
report.tensorReclaimed = await collectUntil(() => inUse() === base);

// a `data` view keeps its tensor (and block) alive: the block must not be reused under it
let view = (() => bn.alloc(1 << 16).data)();
view[0] = 42;
await collectSome();
report.viewKeepsTensor = inUse() > base && view[0] === 42;
view = null;
report.viewDroppedReclaimed = await collectUntil(() => inUse() === base);

// free() is deterministic and unregisters: a later collection must not free the block again
// (here the freed block is reused at once by another tensor, which must stay allocated)
const reused = await (async () => {
  const t = bn.alloc(1000);
  t.free();
  report.freeIsImmediate = inUse() === base;
  return bn.alloc(1000);
})();
const withReused = inUse();
(() => bn.alloc(500))(); // a dropped tensor, so that we can see finalizers ran
await collectUntil(() => inUse() === withReused);
await collectSome();
report.freedNotReleasedAgain = inUse() === withReused && reused.data.length === 1000;
reused.free();

// a module used again after dispose() and then dropped gives its block back
(() => {
  const layer = new bn.BatchNorm(4);
  const x = Float32Array.from({ length: 4 * 4 * 64 }, (_, i) => Math.sin(i));
  layer.forward(x, [4, 4, 64]);
  layer.dispose();
  layer.forward(x, [4, 4, 64]);
})();
report.moduleHeldAfterReuse = inUse() > base;
report.moduleReclaimed = await collectUntil(() => inUse() === base);

console.log(JSON.stringify(report));
