// The worker pool: threads that run kernel calls on one shared wasm memory, dispatched through a
// shared control block with Atomics (no message per call).
//
// Protocol: worker w owns slot w of the control block, `SLOT` int32s (64 bytes, one cache line) at
// w * SLOT: [seq, done, ready]. A worker sets ready once its instance exists. To run a job, the pool writes it into the worker's job area (float64s:
// [calls, then per call: kernel index, argument count, arguments...]), stores seq + 1 and notifies;
// the worker runs the calls in order, stores done = seq and notifies. Workers spin for a while
// before they sleep (the next job often follows at once: pthreadpool does the same), and every
// wait uses the value it read, so no wake-up is lost. seq = -1 ends a worker.
// See ../shared/notes/threads.md for the measurements behind the choices.

import type { CompiledBuild } from "./kernels.js";
import type { LinearMemory } from "./memory.js";

/** One kernel call: its index in `WebAssembly.Module.exports(module)`, then its arguments. */
export type Call = readonly number[];
/** Calls that run in order on one thread. */
export type Job = readonly Call[];

const SLOT = 16;
const JOB_F64 = 4096;
/** Iterations a worker spins on the control word before it sleeps (about 50-100 us). */
const WORKER_SPIN = 20_000;
/** Iterations the calling thread spins on a worker's done word before it sleeps. */
const CALLER_SPIN = 50_000;

/** Atomics.waitAsync (ES2024; Node 16+, Chrome 87+, Safari 16.4+, Firefox 145+), typed here for ES2022 libs. */
const waitAsync = (
  Atomics as unknown as {
    waitAsync(a: Int32Array, i: number, v: number, timeout?: number): { async: boolean; value: Promise<string> | string };
  }
).waitAsync;

/** A started worker as the pool needs it (Node's worker_threads Worker, with ref/unref, or a browser Worker). */
interface WorkerHandle {
  postMessage(message: unknown): void;
  terminate(): unknown;
  ref?(): void;
  unref?(): void;
}

/** Starts the worker script in this environment (Node: worker_threads, unref'd; browsers: a module worker). */
function spawn(): WorkerHandle {
  const threads = (globalThis as { process?: { getBuiltinModule?(id: string): unknown } }).process?.getBuiltinModule?.(
    "node:worker_threads",
  ) as { Worker: new (url: URL, options: { execArgv: string[] }) => WorkerHandle & { unref(): void } } | undefined;
  if (threads) {
    // no inherited flags: `node --input-type=module -e ...` would hand the worker an --input-type it rejects
    const worker = new threads.Worker(new URL("./worker.js", import.meta.url), { execArgv: [] });
    worker.unref(); // a pool never keeps a Node process alive, except while a caller awaits it (hold)
    return worker;
  }
  return new Worker(new URL("./worker.js", import.meta.url), { type: "module" });
}

/** Whether this environment can run a pool: shared memory that can be posted, and workers. */
export function threadsAvailable(): boolean {
  const g = globalThis as { crossOriginIsolated?: boolean; process?: { getBuiltinModule?: unknown } };
  if (typeof SharedArrayBuffer === "undefined" || typeof Atomics === "undefined") return false;
  if (g.process?.getBuiltinModule) return true;
  return typeof Worker !== "undefined" && g.crossOriginIsolated === true;
}

/** Whether the calling thread may block in Atomics.wait (not a browser's main thread). */
export function canBlock(): boolean {
  const g = globalThis as { process?: unknown; document?: unknown };
  return g.process !== undefined || g.document === undefined;
}

export class Pool {
  private readonly control: Int32Array;
  private readonly jobs: Float64Array;
  private seq = 0;
  private ended = false;
  private holds = 0;

  private constructor(
    private readonly workers: WorkerHandle[],
    controlBuffer: SharedArrayBuffer,
    jobBuffer: SharedArrayBuffer,
  ) {
    this.control = new Int32Array(controlBuffer);
    this.jobs = new Float64Array(jobBuffer);
  }

  /**
   * Starts `count` workers on `memory` with the compiled threaded build `module` (not recompiled) and
   * waits until each has instantiated it; throws (after ending them) if one is not ready in `timeoutMs`.
   */
  static async start(module: CompiledBuild, memory: LinearMemory, count: number, timeoutMs = 10_000): Promise<Pool> {
    const controlBuffer = new SharedArrayBuffer(Math.max(1, count) * SLOT * 4);
    const jobs = new SharedArrayBuffer(Math.max(1, count) * JOB_F64 * 8);
    const workers: WorkerHandle[] = [];
    for (let w = 0; w < count; w++) {
      const worker = spawn();
      worker.postMessage({
        module, memory, control: controlBuffer, jobs, seqAt: w * SLOT, doneAt: w * SLOT + 1, readyAt: w * SLOT + 2,
        jobAt: w * JOB_F64, spin: WORKER_SPIN,
      });
      workers.push(worker);
    }
    const pool = new Pool(workers, controlBuffer, jobs);
    const control = new Int32Array(controlBuffer);
    const deadline = Date.now() + timeoutMs;
    pool.hold(1);
    try {
      for (let w = 0; w < count; w++) {
        while (Atomics.load(control, w * SLOT + 2) === 0) {
          const left = deadline - Date.now();
          const wait = left > 0 ? waitAsync(control, w * SLOT + 2, 0, left) : null;
          if (!wait || (wait.async && (await wait.value) === "timed-out")) {
            await pool.terminate();
            throw new Error(`threads: worker ${w} did not start within ${timeoutMs} ms`);
          }
        }
      }
    } finally {
      pool.hold(-1);
    }
    return pool;
  }

  /** Workers in the pool. */
  get size(): number {
    return this.workers.length;
  }

  /**
   * Runs `jobs[0]` on the calling thread through `inline` and `jobs[i]` on worker i - 1, and returns
   * when all are done. Blocks the calling thread: not for a browser's main thread.
   */
  run(jobs: readonly Job[], inline: (job: Job) => void): void {
    const posted = this.post(jobs.slice(1));
    if (jobs.length) inline(jobs[0]);
    for (let w = 0; w < posted; w++) {
      const at = w * SLOT + 1;
      let v;
      for (let i = 0; (v = Atomics.load(this.control, at)) !== this.seq && i < CALLER_SPIN; i++);
      while ((v = Atomics.load(this.control, at)) !== this.seq) Atomics.wait(this.control, at, v);
    }
  }

  /** Runs `jobs[i]` on worker i; resolves when all are done, never blocking the calling thread. */
  async runAsync(jobs: readonly Job[]): Promise<void> {
    const posted = this.post(jobs);
    const seq = this.seq;
    this.hold(1);
    try {
      for (let w = 0; w < posted; w++) {
        const at = w * SLOT + 1;
        let v;
        while ((v = Atomics.load(this.control, at)) !== seq) {
          const wait = waitAsync(this.control, at, v);
          if (wait.async) await wait.value;
        }
      }
    } finally {
      this.hold(-1);
    }
  }

  /**
   * Keeps Node's event loop alive while a caller awaits the workers (an Atomics.waitAsync promise
   * alone does not, and the workers are unref'd): `delta` +1 on entry, -1 on exit.
   */
  private hold(delta: number): void {
    const before = this.holds;
    this.holds += delta;
    if (before === 0 && this.holds > 0) for (const w of this.workers) w.ref?.();
    if (before > 0 && this.holds === 0) for (const w of this.workers) w.unref?.();
  }

  /** Ends the workers; the pool cannot run jobs afterwards. */
  async terminate(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    for (let w = 0; w < this.workers.length; w++) {
      Atomics.store(this.control, w * SLOT, -1);
      Atomics.notify(this.control, w * SLOT);
    }
    await Promise.all(this.workers.map((worker) => worker.terminate()));
  }

  /** Writes each job into its worker's area and wakes the worker; returns how many were posted. */
  private post(jobs: readonly Job[]): number {
    if (this.ended) throw new Error("threads: the pool was terminated (call init() again)");
    if (jobs.length > this.workers.length) throw new RangeError(`threads: ${jobs.length} jobs for ${this.workers.length} workers`);
    this.seq = (this.seq % 0x3fffffff) + 1; // never 0, a fresh worker's value
    for (let w = 0; w < jobs.length; w++) {
      let at = w * JOB_F64;
      const job = jobs[w];
      this.jobs[at++] = job.length;
      for (const call of job) {
        if (at + call.length + 1 > (w + 1) * JOB_F64) throw new RangeError("threads: job too long");
        this.jobs[at++] = call[0];
        this.jobs[at++] = call.length - 1;
        for (let a = 1; a < call.length; a++) this.jobs[at++] = call[a];
      }
      Atomics.store(this.control, w * SLOT, this.seq);
      Atomics.notify(this.control, w * SLOT);
    }
    return jobs.length;
  }
}
