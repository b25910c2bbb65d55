// wasm-batchnorm/tfjs: TensorFlow.js's FusedBatchNorm kernel (what tf.batchNorm and tfjs-layers'
// BatchNormalization run) re-registered on this library's inference kernel, for tfjs's cpu and wasm
// backends. TensorFlow.js is passed in, never imported: it is an optional peer dependency of this
// subpath only. Statistics of one value per channel of one axis are computed here, with NumPy's
// broadcasting (the last axis: channels-last; any other, e.g. [1, C, 1, 1] on NCHW: channels-first,
// which tfjs's own kernels get wrong, tfjs#1106); any other input goes to tfjs's own kernel.
/**
 * `wasm-batchnorm/tfjs`: the TensorFlow.js kernel plugin ({@link registerTfjsKernels}).
 * @packageDocumentation
 * @mergeModuleWith <project>
 */
import { init, type Backend } from "./index.js";
import { MAX_CHANNELS, checkKeys, describe, type Layout } from "./validate.js";

/** (`wasm-batchnorm/tfjs`) The part of a TensorFlow.js TensorInfo (a tensor's handle inside a kernel) that the plugin reads. */
export interface TfjsTensorInfo {
  dataId: object;
  shape: number[];
  dtype: string;
}

/** (`wasm-batchnorm/tfjs`) A TensorFlow.js kernel registration (tfjs-core's `KernelConfig`), as far as the plugin uses it. */
export interface TfjsKernelConfig {
  kernelName: string;
  backendName: string;
  kernelFunc(args: { inputs: Record<string, TfjsTensorInfo | undefined>; backend: unknown; attrs?: Record<string, unknown> }): unknown;
  setupFunc?(backend: unknown): unknown;
  disposeFunc?(backend: unknown): unknown;
}

/** (`wasm-batchnorm/tfjs`) The three kernel-registry functions of `@tensorflow/tfjs-core` (or `@tensorflow/tfjs`) the plugin calls. */
export interface Tfjs {
  getKernel(kernelName: string, backendName: string): TfjsKernelConfig | undefined;
  registerKernel(config: TfjsKernelConfig): void;
  unregisterKernel(kernelName: string, backendName: string): void;
}

/** (`wasm-batchnorm/tfjs`) The TensorFlow.js backends whose tensor storage the plugin reads: `'cpu'` and `'wasm'`. */
export type TfjsBackendName = "cpu" | "wasm";

/** (`wasm-batchnorm/tfjs`) Options of {@link registerTfjsKernels}. */
export interface TfjsKernelOptions {
  /**
   * The TensorFlow.js backends whose FusedBatchNorm kernel to replace, each `'cpu'` or `'wasm'` and
   * already imported (registered with tfjs). Default: those of the two that are registered.
   */
  backends?: readonly TfjsBackendName[];
  /**
   * The wasm-batchnorm backend that computes: any from `init()`. Default `await init()` (SIMD where
   * supported, threads `'auto'`). Its async calls must not be pending while tfjs runs the kernel
   * (a sync call then throws): give the plugin a backend of its own if you use them.
   */
  bn?: Backend;
}

/** (`wasm-batchnorm/tfjs`) What {@link registerTfjsKernels} resolves to. */
export interface TfjsKernels {
  /** The tfjs backends now running the plugin's kernel. */
  readonly backends: readonly TfjsBackendName[];
  /** The wasm-batchnorm backend that computes. */
  readonly bn: Backend;
  /** Puts tfjs's own kernels back on these backends: `unregisterTfjsKernels(tf, backends)`. */
  unregister(): void;
}

const KERNEL = "FusedBatchNorm";
const BACKENDS: readonly TfjsBackendName[] = ["cpu", "wasm"];
const OPTIONS: ReadonlySet<string> = new Set(["backends", "bn"]);

/** Each kernel config the plugin registered, and the tfjs kernel it replaced (to fall back to and restore). */
const originals = new WeakMap<TfjsKernelConfig, TfjsKernelConfig>();

/** Float32Arrays over a backend's own storage for x and the statistics, and an output to write y into. */
interface Io {
  x: Float32Array;
  stats: (Float32Array | null)[];
  y: Float32Array;
  out: TfjsTensorInfo;
}

/**
 * How each backend's tensors are read and written; null where the backend is not the one expected
 * (then tfjs's own kernel runs). The output is made before any view is taken: making it may grow the
 * wasm backend's heap, which detaches earlier views.
 */
const STORAGE: Record<TfjsBackendName, (backend: never, x: TfjsTensorInfo, stats: (TfjsTensorInfo | undefined)[]) => Io | null> = {
  // MathBackendCPU: `data.get(dataId).values` is the tensor's own Float32Array; makeTensorInfo adopts y
  cpu(backend: { data?: { get?(id: object): { values?: unknown } | undefined }; makeTensorInfo?(shape: number[], dtype: string, values: Float32Array): TfjsTensorInfo }, x, stats) {
    if (typeof backend.data?.get !== "function" || typeof backend.makeTensorInfo !== "function") return null;
    const read = (t: TfjsTensorInfo) => backend.data!.get!(t.dataId)?.values;
    const values = [x, ...stats].map((t) => (t ? read(t) : null));
    if (!values.every((v) => v === null || v instanceof Float32Array)) return null;
    const y = new Float32Array((values[0] as Float32Array).length);
    return { x: values[0] as Float32Array, stats: values.slice(1) as (Float32Array | null)[], y, out: backend.makeTensorInfo(x.shape, "float32", y) };
  },
  // BackendWasm: tensors live in its own wasm heap; typedArrayFromHeap is a view (we copy in and out once)
  wasm(backend: { makeOutput?(shape: number[], dtype: string): TfjsTensorInfo; typedArrayFromHeap?(t: TfjsTensorInfo): unknown }, x, stats) {
    if (typeof backend.makeOutput !== "function" || typeof backend.typedArrayFromHeap !== "function") return null;
    const out = backend.makeOutput(x.shape, "float32");
    const view = (t: TfjsTensorInfo) => backend.typedArrayFromHeap!(t) as Float32Array;
    return { x: view(x), stats: stats.map((t) => (t ? view(t) : null)), y: view(out), out };
  },
};

/**
 * The axis of x (shape `xs`) along which statistics of shape `ss` hold one value per channel, with
 * NumPy's broadcasting (shapes aligned at the right); -1 when they do not (a scalar, values along
 * several axes, or shapes that do not broadcast). Statistics of size 1 count as per channel only when
 * x's last axis has one channel.
 */
function channelAxis(xs: readonly number[], ss: readonly number[]): number {
  const r = xs.length;
  const k = ss.length;
  if (k === 0 || k > r) return -1;
  let axis = -1;
  for (let i = 0; i < k; i++) {
    if (ss[i] === 1) continue;
    if (axis >= 0 || ss[i] !== xs[r - k + i]) return -1;
    axis = r - k + i;
  }
  if (axis < 0) return xs[r - 1] === 1 ? r - 1 : -1;
  return axis;
}

/** Our batchNorm's shape, layout and eps for a FusedBatchNorm call, or null where tfjs's own kernel must run. */
function plan(x: TfjsTensorInfo, stats: (TfjsTensorInfo | undefined)[], eps: unknown): { shape: number[]; layout: Layout; eps: number } | null {
  if (typeof eps !== "number" || !Number.isFinite(eps) || eps <= 0) return null;
  if (x.dtype !== "float32" || stats.some((s) => s && s.dtype !== "float32")) return null;
  let axis = -1;
  for (const s of stats) {
    if (!s) continue;
    const a = channelAxis(x.shape, s.shape);
    if (a < 0 || (axis >= 0 && a !== axis)) return null;
    axis = a;
  }
  const size = x.shape.reduce((p, d) => p * d, 1);
  const c = x.shape[axis];
  if (size === 0 || c > MAX_CHANNELS) return null;
  if (axis === x.shape.length - 1) return { shape: [size / c, c], layout: "channels-last", eps };
  const outer = x.shape.slice(0, axis).reduce((p, d) => p * d, 1);
  return { shape: [outer, c, size / outer / c], layout: "channels-first", eps };
}

/** The kernel registered for backend `name`: ours where the input fits, else `original`'s. */
function kernelFunc(bn: Backend, name: TfjsBackendName, original: TfjsKernelConfig): TfjsKernelConfig["kernelFunc"] {
  return (args) => {
    const { x, mean, variance, offset, scale } = args.inputs;
    const stats = [mean, variance, offset, scale];
    const p = x && mean && variance ? plan(x, stats, args.attrs?.varianceEpsilon) : null;
    const io = p ? STORAGE[name](args.backend as never, x!, stats) : null;
    if (!p || !io) return original.kernelFunc(args);
    const [runningMean, runningVar, bias, weight] = io.stats;
    try {
      bn.batchNorm(io.x, { shape: p.shape, layout: p.layout, weight, bias, runningMean, runningVar, training: false, eps: p.eps, out: io.y });
    } catch (e) {
      (args.backend as { disposeData?(id: object): unknown }).disposeData?.(io.out.dataId);
      throw e;
    }
    return io.out;
  };
}

function checkTf(tf: unknown): asserts tf is Tfjs {
  const t = tf as Partial<Tfjs> | null;
  if (typeof t?.getKernel !== "function" || typeof t.registerKernel !== "function" || typeof t.unregisterKernel !== "function") {
    throw new TypeError(`tf: expected TensorFlow.js (import * as tf from '@tensorflow/tfjs-core'), got ${describe(tf)}`);
  }
}

function checkBackends(v: unknown): TfjsBackendName[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || v.length === 0 || !v.every((b) => BACKENDS.includes(b))) {
    throw new TypeError(`backends: expected a non-empty array of 'cpu' and 'wasm', got ${describe(v)}`);
  }
  return [...new Set(v as TfjsBackendName[])];
}

/**
 * (`wasm-batchnorm/tfjs`) Replaces TensorFlow.js's `FusedBatchNorm` kernel on its cpu and wasm backends with this library's
 * inference kernel, so `tf.batchNorm` and tfjs-layers' BatchNormalization (inference, and training
 * through `tf.moments`) run it. Inputs are read from and written to the backend's own storage: no
 * copy on the cpu backend beyond this library's staging, one in and one out on the wasm backend.
 *
 * Computed here (float32 tensors, eps a finite number > 0, at most 2^24 channels): mean, variance,
 * offset and scale holding one value per channel of one axis of x, with NumPy's broadcasting:
 * `[C]` or `[1, ..., 1, C]` on the last axis (channels-last), and `[1, C, 1, 1]` or `[C, 1, 1]` on
 * axis 1 of NCHW (channels-first), which tfjs's own kernels compute wrongly (tfjs#1106). Everything
 * else (scalar or full-shape statistics, statistics on different axes, other dtypes, empty tensors)
 * runs tfjs's own kernel, which is also kept to restore with {@link unregisterTfjsKernels}.
 * Registering again replaces the plugin's kernel (the original is kept). Gradients are tfjs's own.
 * @param tf TensorFlow.js: `@tensorflow/tfjs-core` or `@tensorflow/tfjs` (any object with
 *   getKernel, registerKernel and unregisterKernel).
 * @param options `backends` and `bn`; see {@link TfjsKernelOptions}.
 * @returns the backends replaced, the wasm-batchnorm backend, and `unregister()`.
 * @throws {TypeError} (rejects with) for `tf` without the kernel registry, an unknown option, or
 *   `backends` that is not a non-empty array of `'cpu'` and `'wasm'`; an Error naming the backend
 *   when tfjs has no FusedBatchNorm kernel for it (its package not imported) or none at all.
 * @example
 * import * as tf from "@tensorflow/tfjs-core";
 * import "@tensorflow/tfjs-backend-cpu";
 * import { registerTfjsKernels } from "wasm-batchnorm/tfjs";
 *
 * const plugin = await registerTfjsKernels(tf, { backends: ["cpu"] });
 * const y = tf.batchNorm(x, mean, variance, offset, scale, 1e-3); // runs wasm-batchnorm
 * plugin.unregister(); // tfjs's own kernel again
 */
export async function registerTfjsKernels(tf: Tfjs, options: TfjsKernelOptions = {}): Promise<TfjsKernels> {
  checkTf(tf);
  checkKeys(options, OPTIONS);
  const asked = checkBackends(options.backends);
  const names = asked ?? BACKENDS.filter((b) => tf.getKernel(KERNEL, b));
  if (names.length === 0) {
    throw new Error("backends: TensorFlow.js has no FusedBatchNorm kernel for 'cpu' or 'wasm': import '@tensorflow/tfjs-backend-cpu' or '-wasm' first");
  }
  for (const name of names) {
    if (!tf.getKernel(KERNEL, name)) {
      throw new Error(`backends: TensorFlow.js has no FusedBatchNorm kernel for '${name}': import '@tensorflow/tfjs-backend-${name}' first`);
    }
  }
  const bn = options.bn ?? (await init());
  for (const name of names) {
    const current = tf.getKernel(KERNEL, name)!;
    const original = originals.get(current) ?? current;
    const config: TfjsKernelConfig = { ...original, kernelFunc: kernelFunc(bn, name, original) };
    originals.set(config, original);
    tf.unregisterKernel(KERNEL, name);
    tf.registerKernel(config);
  }
  return { backends: names, bn, unregister: () => unregisterTfjsKernels(tf, names) };
}

/**
 * (`wasm-batchnorm/tfjs`) Puts TensorFlow.js's own FusedBatchNorm kernel back where {@link registerTfjsKernels} replaced it.
 * @param tf the TensorFlow.js the plugin was registered in.
 * @param backends which of `'cpu'` and `'wasm'` to restore. Default both.
 * @returns the backends restored (those running the plugin's kernel; the others are left alone).
 * @throws {TypeError} for `tf` without the kernel registry or `backends` that is not a non-empty
 *   array of `'cpu'` and `'wasm'`.
 * @example
 * unregisterTfjsKernels(tf); // ['cpu', 'wasm'] where both were registered
 */
export function unregisterTfjsKernels(tf: Tfjs, backends: readonly TfjsBackendName[] = BACKENDS): TfjsBackendName[] {
  checkTf(tf);
  const restored: TfjsBackendName[] = [];
  for (const name of checkBackends(backends)!) {
    const current = tf.getKernel(KERNEL, name);
    const original = current && originals.get(current);
    if (!original) continue;
    tf.unregisterKernel(KERNEL, name);
    tf.registerKernel(original);
    restored.push(name);
  }
  return restored;
}
