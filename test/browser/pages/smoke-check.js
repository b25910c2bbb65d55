// The packaging smoke check. The unbundled page (smoke.js), the Vite-built page (vite/main.js) and
// Node all run it with their own `init`, so the tests can compare the browser's bits with Node's.

/** @typedef {typeof import("../../../dist/index.js").init} Init */

/**
 * A training forward of a small NCHW tensor on the default backend and on each forced one.
 * A backend that fails to load is reported as its error message, not thrown.
 * @param {Init} init
 */
export async function smokeCheck(init) {
  const x = Float32Array.from({ length: 2 * 3 * 4 * 5 }, (_, i) => Math.sin(1.7 * i) * (1 + (i % 3)) + (i % 7));
  const options = { shape: [2, 3, 4, 5], weight: Float32Array.of(1, 2, 0.5), bias: Float32Array.of(0, -1, 3) };
  /** @type {Record<string, { backend: string, y: number[], mean: number[], invstd: number[] } | { error: string }>} */
  const runs = {};
  for (const backend of /** @type {const} */ ([undefined, "simd", "scalar"])) {
    try {
      const bn = await init(backend && { backend });
      const { y, mean, invstd } = bn.batchNorm(x, options);
      runs[backend ?? "default"] = { backend: bn.backend, y: Array.from(y), mean: Array.from(mean), invstd: Array.from(invstd) };
    } catch (e) {
      runs[backend ?? "default"] = { error: String(e) };
    }
  }
  return runs;
}

/**
 * Page entry: runs the check on load and publishes it as `window.smoke`, then marks
 * `<html data-done>` for the test to wait on (a DOM attribute needs no script evaluation in the page).
 * @param {Init} init
 */
export async function publishSmokeCheck(init) {
  /** @type {any} */ (window).smoke = await smokeCheck(init);
  document.documentElement.dataset.done = "";
}
