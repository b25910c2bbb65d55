// Copy bandwidth of this machine with 1, 2, ... threads: the ceiling of memory-bound scaling.
// A buffer of `bytes` is copied once per round, either by the main thread alone or in T equal parts
// by the main thread and T - 1 workers at the same time, all in one shared wasm memory with the
// copy loop the kernels use (v128 loads and stores, 64 bytes per iteration). Rounds of each thread
// count are interleaved, so load on the machine hits all alike.
import { Worker } from "node:worker_threads";
import { median } from "./harness.js";

/**
 * A module importing a shared memory ("e" "m") and exporting copy(dst, src, n), n a multiple of 64:
 *   (func $copy (param $d i32) (param $s i32) (param $n i32) (local $e i32)
 *     (local.set $e (i32.add (local.get $s) (local.get $n)))
 *     (block (loop
 *       (br_if 1 (i32.ge_u (local.get $s) (local.get $e)))
 *       (v128.store offset=0 (local.get $d) (v128.load offset=0 (local.get $s)))   ;; and 16, 32, 48
 *       (local.set $d (i32.add (local.get $d) (i32.const 64)))
 *       (local.set $s (i32.add (local.get $s) (i32.const 64)))
 *       (br 0))))
 * Assembled here because a 100-byte module needs no toolchain.
 */
function copyModule() {
  const section = (id, content) => [id, content.length, ...content]; // every section here is < 128 bytes
  const str = (s) => [s.length, ...[...s].map((c) => c.charCodeAt(0))];
  const [get, set, i32const, add, geU, brIf, br] = [0x20, 0x21, 0x41, 0x6a, 0x4f, 0x0d, 0x0c];
  const move = (offset) => [get, 0, get, 1, 0xfd, 0x00, 4, offset, 0xfd, 0x0b, 4, offset]; // v128.load/store align=16
  const body = [
    1, 1, 0x7f, // one i32 local: $e
    get, 1, get, 2, add, set, 3,
    0x02, 0x40, 0x03, 0x40, // block, loop
    get, 1, get, 3, geU, brIf, 1,
    ...move(0), ...move(16), ...move(32), ...move(48),
    get, 0, i32const, 0xc0, 0x00, add, set, 0,
    get, 1, i32const, 0xc0, 0x00, add, set, 1,
    br, 0,
    0x0b, 0x0b, 0x0b, // end loop, block, function
  ];
  const bytes = [
    0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0,
    ...section(1, [1, 0x60, 3, 0x7f, 0x7f, 0x7f, 0]),
    ...section(2, [1, ...str("e"), ...str("m"), 0x02, 0x03, 0x00, 0x80, 0x80, 0x04]), // shared memory, max 4 GiB
    ...section(3, [1, 0]),
    ...section(7, [1, ...str("copy"), 0x00, 0]),
    ...section(10, [1, body.length, ...body]),
  ];
  return new WebAssembly.Module(new Uint8Array(bytes));
}

// control block (int32): [0] round (-1 ends the workers), [1] parts, [2] bytes per part, [3] parts done
const WORKER = `
const { workerData: { module, memory, control, index, bytes } } = require("node:worker_threads");
const { copy } = new WebAssembly.Instance(module, { e: { m: memory } }).exports;
const c = new Int32Array(control);
let seen = 0;
for (;;) {
  let v;
  while ((v = Atomics.load(c, 0)) === seen) Atomics.wait(c, 0, v);
  seen = v;
  if (v < 0) break;
  if (index < c[1]) {
    const part = c[2];
    copy(bytes + index * part, index * part, part);
    Atomics.add(c, 3, 1);
    Atomics.notify(c, 3);
  }
}
`;

/**
 * Copies a `bytes` buffer (rounded down to 64 per thread) with each thread count in `threads`,
 * `rounds` times each, interleaved; returns per thread count the median ms, GB/s (one read and one
 * write of the buffer) and the ratio to one thread.
 * @param {{ bytes?: number, threads?: number[], rounds?: number }} [o]
 * @returns {Promise<{ bytes: number, rows: { threads: number, ms: number, gbps: number, ratio: number }[] }>}
 */
export async function copyBandwidth({ bytes = 100e6, threads = [1, 2], rounds = 15 } = {}) {
  const most = Math.max(...threads);
  const n = Math.floor(bytes / (64 * most)) * 64 * most;
  const memory = new WebAssembly.Memory({ initial: Math.ceil((2 * n) / 65536), maximum: Math.ceil((2 * n) / 65536), shared: true });
  new Uint8Array(memory.buffer).fill(1); // every page touched before timing
  const module = copyModule();
  const { copy } = new WebAssembly.Instance(module, { e: { m: memory } }).exports;
  const control = new SharedArrayBuffer(16);
  const c = new Int32Array(control);
  // ended in `finally`: kept referenced, since the wait for "online" alone does not keep Node running
  const workers = Array.from({ length: most - 1 }, (_, i) => new Worker(WORKER, { eval: true, workerData: { module, memory, control, index: i + 1, bytes: n } }));
  // online: the worker runs; the warm-up round below waits for its instance too
  await Promise.all(workers.map((w) => new Promise((resolve, reject) => (w.once("online", resolve), w.once("error", reject)))));
  const round = (parts) => {
    const part = n / parts;
    c[1] = parts;
    c[2] = part;
    Atomics.store(c, 3, 0);
    const t0 = performance.now();
    Atomics.add(c, 0, 1);
    Atomics.notify(c, 0);
    copy(n, 0, part);
    let v;
    while ((v = Atomics.load(c, 3)) < parts - 1) Atomics.wait(c, 3, v);
    return performance.now() - t0;
  };
  try {
    // warm-up: enough small calls for V8 to tier the copy loop up from its baseline compiler (wasm
    // has no on-stack replacement, so one long first call would stay in baseline code), then a round each
    for (let i = 0; i < 2000; i++) copy(n, 0, 4096);
    for (const t of threads) round(t);
    const times = threads.map(() => []);
    for (let r = 0; r < rounds; r++) threads.forEach((t, i) => times[i].push(round(t)));
    const ms = times.map(median);
    return { bytes: n, rows: threads.map((t, i) => ({ threads: t, ms: ms[i], gbps: (2 * n) / (ms[i] / 1000) / 1e9, ratio: ms[0] / ms[i] })) };
  } finally {
    Atomics.store(c, 0, -1);
    Atomics.notify(c, 0);
    await Promise.all(workers.map((w) => w.terminate()));
  }
}
