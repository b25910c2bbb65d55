// One network of the demo's Train panel, trained off the page's thread: the MNIST example's own
// training code (examples/mnist/mlp.js) on the committed digits, with or without the library's BN.
// Posts every evaluation point as it comes, then the result.
import { init } from "/dist/index.js";
import { loadDigits } from "/examples/mnist/digits.js";
import { train } from "/examples/mnist/mlp.js";

self.onmessage = async (/** @type {MessageEvent} */ e) => {
  const { bytes, batchNorm, lr, steps, seed } = e.data;
  try {
    // one thread: each network has its own worker, and a [60, 100] BN call is too small to split
    const bn = await init({ threads: 1 });
    const data = await loadDigits(new Uint8Array(bytes));
    const result = train(bn, data, { batchNorm, lr, steps, seed, thresholds: [0.8, 0.9] }, {
      onPoint: (point) => self.postMessage({ type: "point", point }),
    });
    self.postMessage({ type: "done", result: { stepsTo: result.stepsTo, finalTest: result.finalTest, diverged: result.diverged, ms: result.ms } });
  } catch (error) {
    self.postMessage({ type: "error", message: error instanceof Error ? error.message : String(error) });
  }
};
