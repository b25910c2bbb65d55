// A pool worker: instantiates the threaded kernel build on the shared wasm memory it is given and
// runs the jobs the pool posts in its slot of the shared control block (see src/pool.ts for the
// protocol; the pool sends every constant this file needs, so the two cannot disagree).
// Plain JavaScript with no imports, so the same file runs as a Node worker_threads worker and as a
// browser module worker (loaded by `new Worker(new URL("./worker.js", import.meta.url))`, which
// bundlers follow and `script-src 'self'` allows).

/**
 * @param {{ module: WebAssembly.Module, memory: WebAssembly.Memory, control: SharedArrayBuffer,
 *   jobs: SharedArrayBuffer, seqAt: number, doneAt: number, readyAt: number, jobAt: number, spin: number }} init
 */
function start(init) {
  const instance = new WebAssembly.Instance(init.module, { env: { memory: init.memory } });
  const kernels = WebAssembly.Module.exports(init.module).map((e) => instance.exports[e.name]);
  const control = new Int32Array(init.control);
  const jobs = new Float64Array(init.jobs);
  const { seqAt, doneAt, readyAt, jobAt, spin } = init;
  const args = [];
  Atomics.store(control, readyAt, 1);
  Atomics.notify(control, readyAt);
  let seq = 0;
  for (;;) {
    // spin briefly (the next job often follows at once), then sleep on the value last read
    let v;
    for (let i = 0; (v = Atomics.load(control, seqAt)) === seq && i < spin; i++);
    while ((v = Atomics.load(control, seqAt)) === seq) Atomics.wait(control, seqAt, v);
    seq = v;
    if (seq < 0) return;
    // a job: [calls, then per call: kernel index, argument count, arguments...]
    let at = jobAt;
    const calls = jobs[at++];
    for (let c = 0; c < calls; c++) {
      const kernel = kernels[jobs[at++]];
      const count = jobs[at++];
      args.length = count;
      for (let a = 0; a < count; a++) args[a] = jobs[at++];
      kernel(...args);
    }
    Atomics.store(control, doneAt, seq);
    Atomics.notify(control, doneAt);
  }
}

const threads = globalThis.process?.getBuiltinModule?.("node:worker_threads");
if (threads && !threads.isMainThread) threads.parentPort.once("message", start);
else globalThis.onmessage = (event) => start(event.data);
