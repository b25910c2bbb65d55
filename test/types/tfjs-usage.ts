// Compiled by test/tfjs-plugin.test.ts with `tsc --noEmit` (tsconfig.tfjs.json): wasm-batchnorm/tfjs's
// declarations, imported by the package's name, accept TensorFlow.js's own module as `tf` and reject
// what the runtime rejects (each `@ts-expect-error` line must be an error).
import * as tf from "@tensorflow/tfjs-core";
import { init } from "wasm-batchnorm";
import { registerTfjsKernels, unregisterTfjsKernels, type TfjsBackendName, type TfjsKernels } from "wasm-batchnorm/tfjs";

const plugin: TfjsKernels = await registerTfjsKernels(tf, { backends: ["cpu", "wasm"], bn: await init({ threads: 1 }) });
const names: readonly TfjsBackendName[] = plugin.backends;
const threads: number = plugin.bn.threads;
plugin.unregister();
const restored: TfjsBackendName[] = unregisterTfjsKernels(tf, ["wasm"]);
await registerTfjsKernels(tf);

// @ts-expect-error: tfjs's webgl backend keeps tensors on the GPU; only cpu and wasm are supported
await registerTfjsKernels(tf, { backends: ["webgl"] });
// @ts-expect-error: an unknown option
await registerTfjsKernels(tf, { backend: ["cpu"] });
// @ts-expect-error: not TensorFlow.js
await registerTfjsKernels({}, {});

export { names, restored, threads };
