// Loading a kernel build: base64 -> module, SIMD detection, instantiation against a WasmMemory,
// and the typed signatures of the exports (see assembly/index.ts for what each computes).
import { simdWasm, scalarWasm } from "./wasm.generated.js";
import { WasmMemory } from "./memory.js";

/** A kernel build: `'simd'` (128-bit WebAssembly SIMD, 4 floats per instruction) or `'scalar'`. */
export type BackendName = "simd" | "scalar";

/** Pointers are byte addresses; `c0`/`c1` select channels [c0, c1). */
export interface Kernels {
  heapBase(): number;
  statsChannelsFirst(x: number, n: number, c: number, s: number, c0: number, c1: number, mean: number, variance: number, shift: number, exact: number): void;
  statsChannelsLast(x: number, rows: number, c: number, c0: number, c1: number, mean: number, variance: number, shift: number, exact: number): void;
  forwardCoefficients(
    c: number, c0: number, c1: number, mean: number, variance: number, f32Stats: number, eps: number, weight: number, bias: number,
    coef: number, invstd: number,
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
  normalizeChannelsFirst(x: number, y: number, n: number, c: number, s: number, c0: number, c1: number, coef: number): void;
  normalizeChannelsLast(x: number, y: number, rows: number, c: number, c0: number, c1: number, coef: number): void;
  forwardTrainChannelsFirst(
    x: number, y: number, n: number, c: number, s: number, c0: number, c1: number, group: number, eps: number, weight: number,
    bias: number, mean: number, variance: number, invstd: number, coef: number,
  ): void;
  backwardReduceChannelsFirst(
    dy: number, x: number, n: number, c: number, s: number, c0: number, c1: number, coef: number, sumDy: number,
    sumDyXc: number,
  ): void;
  backwardReduceChannelsLast(
    dy: number, x: number, rows: number, c: number, c0: number, c1: number, coef: number, sumDy: number, sumDyXc: number,
  ): void;
  backwardDxChannelsFirst(
    dy: number, x: number, dx: number, n: number, c: number, s: number, c0: number, c1: number, coef: number,
  ): void;
  backwardDxChannelsLast(dy: number, x: number, dx: number, rows: number, c: number, c0: number, c1: number, coef: number): void;
}

const decoded = new Map<BackendName, Uint8Array<ArrayBuffer>>();

function bytes(name: BackendName): Uint8Array<ArrayBuffer> {
  let b = decoded.get(name);
  if (!b) {
    const text = atob(name === "simd" ? simdWasm : scalarWasm);
    b = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) b[i] = text.charCodeAt(i);
    decoded.set(name, b);
  }
  return b;
}

/** Whether this engine validates the SIMD build (the build itself is the feature test). */
export function simdSupported(): boolean {
  return WebAssembly.validate(bytes("simd"));
}

export async function instantiate(name: BackendName): Promise<{ kernels: Kernels; memory: WasmMemory }> {
  const module = await WebAssembly.compile(bytes(name));
  const memory = new WasmMemory();
  const instance = await WebAssembly.instantiate(module, { env: { memory: memory.memory } });
  const kernels = instance.exports as unknown as Kernels;
  memory.start(kernels.heapBase());
  return { kernels, memory };
}
