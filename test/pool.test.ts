// The worker pool's dispatch (src/pool.ts): a million sync dispatches and many async ones run every
// job exactly once, with no lost wake-up (each job adds 1 to a float64 counter in shared memory
// through a reduce kernel, which adds into its output), and terminate() ends the workers.
import { describe, expect, it } from "vitest";
import { exportIndex, instantiate } from "../src/kernels.js";
import { Pool } from "../src/pool.js";

async function setUp(workers: number) {
  const { module, kernels, memory } = await instantiate("simd", true);
  const at = exportIndex(module);
  // dy = [1], x = [0], mean = [0]: backwardReduceChannelsFirst adds 1 to sumDy per call
  const dy = memory.alloc(64), x = memory.alloc(64), mean = memory.alloc(64);
  memory.f32(dy, 1)[0] = 1;
  const counters = Array.from({ length: workers + 1 }, () => memory.alloc(64));
  const scratch = memory.alloc(64);
  const bump = (w: number) => [at.get("backwardReduceChannelsFirst")!, dy, x, 1, 1, 1, 0, 1, mean, counters[w], scratch];
  const pool = await Pool.start(module, memory.memory, workers);
  const count = (w: number) => memory.f64(counters[w], 1)[0];
  return { pool, kernels, bump, count };
}

describe("worker pool dispatch", () => {
  it("runs a million sync dispatches, each job once, the caller taking a share", async () => {
    const { pool, kernels, bump, count } = await setUp(1);
    const inline = (job: readonly (readonly number[])[]) => {
      for (const call of job) (kernels as unknown as Record<string, (...a: number[]) => void>).backwardReduceChannelsFirst(...call.slice(1));
    };
    const rounds = 1_000_000;
    for (let r = 0; r < rounds; r++) pool.run([[bump(1)], [bump(0)]], inline);
    expect(count(0)).toBe(rounds);
    expect(count(1)).toBe(rounds);
    await pool.terminate();
    expect(() => pool.run([[], [bump(0)]], inline)).toThrow(/terminated/);
  }, 600_000); // no timing bound: on a busy machine a descheduled worker makes a dispatch cost a time slice

  it("runs overlapping-free async dispatches on two workers without blocking", async () => {
    const { pool, bump, count } = await setUp(2);
    const rounds = 20_000;
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    for (let r = 0; r < rounds; r++) await pool.runAsync([[bump(0)], [bump(1)]]);
    clearInterval(timer);
    expect(count(0)).toBe(rounds);
    expect(count(1)).toBe(rounds);
    expect(ticks).toBeGreaterThan(0); // the event loop kept turning
    await pool.terminate();
  }, 600_000); // no timing bound: on a busy machine a descheduled worker makes a dispatch cost a time slice
});
