// Loading a kernel build: base64 -> module, SIMD detection, instantiation against a WasmMemory,
// and the typed signatures of the exports (see assembly/index.ts for what each computes).
import { simdWasm, scalarWasm, simdThreadsWasm, scalarThreadsWasm } from "./wasm.generated.js";
import { WasmMemory } from "./memory.js";

/**
 * A compiled build: a WebAssembly.Module, typed opaquely so the published declarations compile
 * without the DOM lib's WebAssembly namespace (the code hands the real module around).
 */
export type CompiledBuild = object;

/** A kernel build: `'simd'` (128-bit WebAssembly SIMD, 4 floats per instruction) or `'scalar'`. */
export type BackendName = "simd" | "scalar";

/** Pointers are byte addresses; `c0`/`c1` select channels [c0, c1). */
export interface Kernels {
  heapBase(): number;
  /** Rows in a coefficient block (assembly/coefficients.ts owns the layout). */
  COEF_ROWS: { readonly value: number };
  /** The statistics kernels' modes (assembly/stats_channels_first.ts). */
  STATS_FAST: { readonly value: number };
  STATS_WIDE: { readonly value: number };
  STATS_EXACT: { readonly value: number };
  /** f64 mean and biased variance, and sum(x) in `total` unless it is 0. */
  statsChannelsFirst(
    x: number, n: number, c: number, s: number, c0: number, c1: number, mean: number, variance: number, total: number, shift: number,
    mode: number,
  ): void;
  /** f64 mean and biased variance, and sum(x) in `total` unless it is 0. */
  statsChannelsLast(
    x: number, rows: number, c: number, c0: number, c1: number, mean: number, variance: number, total: number, work: number, mode: number,
  ): void;
  forwardCoefficients(
    c: number, c0: number, c1: number, mean: number, variance: number, f32Stats: number, eps: number, weight: number, bias: number,
    coef: number, invstd: number,
  ): void;
  /** The forward block forwardCoefficients wrote, from the f64 mean and invstd it normalized with: a fused ReLU's mask. */
  maskCoefficients(
    c: number, c0: number, c1: number, mean: number, invstd: number, weight: number, bias: number, coef: number,
  ): void;
  splitMeans(c: number, c0: number, c1: number, mean: number, coef: number): void;
  backwardCoefficients(
    c: number, c0: number, c1: number, count: number, sumDy: number, sumDyXc: number, invstd: number,
    weight: number, training: number, coef: number, dweight: number,
  ): void;
  updateRunning(
    c0: number, c1: number, mean: number, variance: number, unbias: number, factor: number, runningMean: number,
    runningVar: number,
  ): void;
  /** `relu` (0 or 1): y = max(0, y). */
  normalizeChannelsFirst(x: number, y: number, n: number, c: number, s: number, c0: number, c1: number, coef: number, relu: number): void;
  normalizeChannelsLast(x: number, y: number, rows: number, c: number, c0: number, c1: number, coef: number, relu: number): void;
  forwardTrainChannelsFirst(
    x: number, y: number, n: number, c: number, s: number, c0: number, c1: number, group: number, eps: number, weight: number,
    bias: number, mean: number, variance: number, invstd: number, coef: number, relu: number,
  ): void;
  /** Adds into sumDy and sumDyXc (f64); `mean` is f64; `mask` a fused ReLU's forward block (maskCoefficients) or 0. */
  backwardReduceChannelsFirst(
    dy: number, x: number, n: number, c: number, s: number, c0: number, c1: number, mean: number, sumDy: number,
    sumDyXc: number, mask: number,
  ): void;
  /** Adds into sumDy and sumDyXc (f64); `mean` is f64; `mask` as backwardReduceChannelsFirst. */
  backwardReduceChannelsLast(
    dy: number, x: number, rows: number, c: number, c0: number, c1: number, mean: number, sumDy: number, sumDyXc: number,
    mask: number,
  ): void;
  /** Training-mode dx; `mask` a fused ReLU's forward block or 0. */
  backwardDxChannelsFirst(
    dy: number, x: number, dx: number, n: number, c: number, s: number, c0: number, c1: number, coef: number, mask: number,
  ): void;
  backwardDxChannelsLast(
    dy: number, x: number, dx: number, rows: number, c: number, c0: number, c1: number, coef: number, mask: number,
  ): void;
  /** Eval-mode dx through a fused ReLU (without one, normalize on dy). */
  backwardDxEvalChannelsFirst(
    dy: number, x: number, dx: number, n: number, c: number, s: number, c0: number, c1: number, coef: number, mask: number,
  ): void;
  backwardDxEvalChannelsLast(
    dy: number, x: number, dx: number, rows: number, c: number, c0: number, c1: number, coef: number, mask: number,
  ): void;
}

const decoded = new Map<string, Uint8Array<ArrayBuffer>>();

/** The bytes of a build: `threaded` is the shared-memory twin the worker pool runs. */
function bytes(name: BackendName, threaded = false): Uint8Array<ArrayBuffer> {
  const key = `${name}${threaded ? "-threads" : ""}`;
  let b = decoded.get(key);
  if (!b) {
    const text = atob(threaded ? (name === "simd" ? simdThreadsWasm : scalarThreadsWasm) : name === "simd" ? simdWasm : scalarWasm);
    b = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) b[i] = text.charCodeAt(i);
    decoded.set(key, b);
  }
  return b;
}

/** Whether this engine validates the SIMD build (the build itself is the feature test). */
export function simdSupported(): boolean {
  return WebAssembly.validate(bytes("simd"));
}

/**
 * Compiles a build and instantiates it on a new WasmMemory (shared for `threaded`); returns the
 * compiled module too, which the worker pool instantiates again in each worker.
 */
export async function instantiate(
  name: BackendName, threaded = false,
): Promise<{ module: CompiledBuild; kernels: Kernels; memory: WasmMemory }> {
  const module = await WebAssembly.compile(bytes(name, threaded));
  const memory = new WasmMemory(threaded);
  const instance = await WebAssembly.instantiate(module, { env: { memory: memory.memory } });
  const kernels = instance.exports as unknown as Kernels;
  memory.start(kernels.heapBase());
  return { module, kernels, memory };
}

/** Index of each export in `WebAssembly.Module.exports(module)`: how the pool names a kernel to a worker. */
export function exportIndex(module: CompiledBuild): Map<string, number> {
  return new Map(WebAssembly.Module.exports(module as WebAssembly.Module).map((e, i) => [e.name, i]));
}
