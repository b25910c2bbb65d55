// Exposes window.runGolden(names, backend) to the test: fetches each case from the server and runs
// it here, in the browser's wasm engine.
import { init } from "/dist/index.js";
import { runCase } from "./golden-case.js";

/**
 * @param {string[]} names
 * @param {"simd" | "scalar"} backend
 */
async function runGolden(names, backend) {
  const bn = await init({ backend });
  /** @type {Record<string, Record<string, number[]>>} */
  const results = {};
  for (const name of names) {
    const response = await fetch(`/test/golden/${name}.json`);
    if (!response.ok) throw new Error(`${name}: HTTP ${response.status}`);
    results[name] = runCase(bn, await response.json());
  }
  return results;
}

/** @type {any} */ (window).runGolden = runGolden;
document.documentElement.dataset.done = "";
