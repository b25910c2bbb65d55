// Exposes window.runThreads(threads) to the test: a backend with that many threads in this page
// (2 need a cross-origin-isolated page), its thread count, and the threads cases run on it.
import { init } from "/dist/index.js";
import { THREAD_CASES, runThreadCase } from "./threads-case.js";

/** @param {number} threads */
async function runThreads(threads) {
  const bn = await init({ backend: "simd", threads });
  /** @type {Record<string, Record<string, number[]>>} */
  const results = {};
  for (const c of THREAD_CASES) results[c.name] = await runThreadCase(bn, c);
  return { threads: bn.threads, isolated: globalThis.crossOriginIsolated === true, results };
}

/** @type {any} */ (window).runThreads = runThreads;
document.documentElement.dataset.done = "";
