// The executor decides where kernel calls run: inline on the calling thread, or split over the
// worker pool. A pass hands it one job per part (a part is a channel range or a range of rows or
// images, see src/engine.ts); with one part, or without a pool, everything runs inline.
import { exportIndex, type CompiledBuild, type Kernels } from "./kernels.js";
import { canBlock, type Call, type Job, type Pool } from "./pool.js";

export type { Call, Job };

/** Kernel names: the exported functions of the builds (src/kernels.ts). */
export type KernelName = { [K in keyof Kernels]: Kernels[K] extends (...args: never[]) => unknown ? K : never }[keyof Kernels];

export class Executor {
  /**
   * Tensors smaller than this run as one part: splitting them costs more in wake-ups than it saves.
   * Measured on the 2-core development VM (see the README's threads section). Tests set it to 0 to
   * split every call.
   */
  static splitBytes = 256 << 10;

  private readonly index: Map<string, number>;
  private readonly fns: ((...args: number[]) => unknown)[];

  constructor(
    readonly kernels: Kernels,
    module: CompiledBuild,
    /** The worker pool, or null for a single-threaded backend. */
    readonly pool: Pool | null,
    /** Threads a sync call may use (the caller and pool.size - 1 workers), >= 1. */
    readonly threads: number,
  ) {
    this.index = exportIndex(module);
    const byName = kernels as unknown as Record<string, (...args: number[]) => unknown>;
    this.fns = WebAssembly.Module.exports(module as WebAssembly.Module).map((e) => byName[e.name]);
  }

  /** A kernel call for a job. */
  call(name: KernelName, ...args: number[]): Call {
    return [this.index.get(name)!, ...args];
  }

  /** Parts a sync call on `bytes` of data should be split into. */
  parts(bytes: number): number {
    return this.pool && bytes >= Executor.splitBytes && canBlock() ? this.threads : 1;
  }

  /** Parts an async call should be split into: every part runs on a worker. */
  partsAsync(bytes: number): number {
    if (!this.pool) return 1;
    return bytes >= Executor.splitBytes ? this.pool.size : 1;
  }

  /** Runs one job per part and returns when all are done (blocks while workers run theirs). */
  run(jobs: readonly Job[]): void {
    if (jobs.length === 1) this.inline(jobs[0]);
    else this.pool!.run(jobs, (job) => this.inline(job));
  }

  /** Runs one job per part on the workers (inline without a pool); never blocks the caller otherwise. */
  async runAsync(jobs: readonly Job[]): Promise<void> {
    if (this.pool) return this.pool.runAsync(jobs);
    for (const job of jobs) this.inline(job);
  }

  private inline(job: Job): void {
    for (const call of job) this.fns[call[0]](...call.slice(1));
  }
}
