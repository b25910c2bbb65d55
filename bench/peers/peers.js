// The peer libraries as harness Impls (bench/harness.js): TensorFlow.js (cpu and wasm backends),
// onnxruntime-web (wasm, in Node) and onnxruntime-node (native), all single-threaded with their wasm
// files loaded from bench/peers/node_modules, and PyTorch through a Python child process.
// Each peer's own copies count as they do for our copying API: Float32Array in, Float32Array out.
import { spawn, spawnSync } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire, register } from "node:module";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";
import { EPS, MOMENTUM, channelsOf, countOf, inputs } from "../workloads.js";
import { batchNormModel } from "./onnx-model.js";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const OPS = ["train", "infer", "backward"];

/** Loads a peer once; a failure is kept and rethrown by every task (so each is reported as failed). */
function lazy(load) {
  let p;
  return () => (p ??= load());
}

// ---------------------------------------------------------------------------------------------
// TensorFlow.js

const loadTf = lazy(async () => {
  // tfjs-core's CommonJS bundle has no gradients; they ship as extension-less ES modules that a
  // resolve hook makes loadable (tfjs-gradients-hook.mjs). Without them tf.grads cannot run.
  register("./tfjs-gradients-hook.mjs", import.meta.url);
  const tf = await import("@tensorflow/tfjs-core");
  tf.enableProdMode(); // also silences the "install tfjs-node" banner
  await import("@tensorflow/tfjs-backend-cpu");
  const wasm = await import("@tensorflow/tfjs-backend-wasm");
  await import("@tensorflow/tfjs-core/dist/register_all_gradients.js");
  wasm.setWasmPaths(`${path.dirname(require.resolve("@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm"))}/`);
  wasm.setThreadsCount(1);
  return { tf, wasm };
});


/**
 * tfjs batch norm on backend `backend` ('cpu' | 'wasm'). tfjs normalizes over the last axis
 * (channels-last), so only channels-last memory is measured: S5 (and S3, [N, C]).
 *   train     tf.moments + tf.batchNorm + running-average update (tensors), y read back with dataSync
 *   infer     tf.batchNorm with the running statistics
 *   backward  tf.grads of moments + batchNorm w.r.t. x, weight, bias: includes the forward, which
 *             tfjs recomputes (it has no standalone batch-norm backward)
 * Every call creates x (and dy) from Float32Arrays and reads y (dx) back: its copies, as in our copying API.
 * With `plugin` ({ bn, registerTfjsKernels } from wasm-batchnorm/tfjs), the same calls with tfjs's
 * FusedBatchNorm kernel replaced by ours on that backend (registered in prepare, restored in dispose):
 * what tf.batchNorm (infer, train) and its recomputed forward (backward) gain from the plugin.
 */
export function tfjsImpl(backend, color, plugin = null) {
  const info = { flags: null };
  return {
    id: `tfjs-${backend}${plugin ? "-plugin" : ""}`,
    label: `tfjs ${backend}${plugin ? " + wasm-batchnorm/tfjs" : ""}`,
    short: `tfjs ${backend}${plugin ? " + plugin" : ""}`,
    group: "peer",
    pristine: backend === "cpu" && !plugin,
    color,
    note: `@tensorflow/tfjs-core + tfjs-backend-${backend}${backend === "wasm" ? " (wasm from node_modules, setThreadsCount(1))" : " (pure JS)"}${plugin ? `, FusedBatchNorm on wasm-batchnorm/tfjs (${plugin.bn.backend}, ${plugin.bn.threads} thread${plugin.bn.threads > 1 ? "s" : ""})` : ""}; channels-last only; backward = tf.grads (includes the recomputed forward)`,
    info,
    supports(w, op) {
      if (!OPS.includes(op)) return op;
      if (w.layout !== "channels-last" && w.shape.length !== 2) return "tfjs batchNorm is channels-last (NHWC) only: see S5 (S1's size in NHWC) and S3";
      return true;
    },
    async prepare(w, op) {
      const { tf } = await loadTf();
      if (!(await tf.setBackend(backend))) throw new Error(`tf.setBackend('${backend}') failed`);
      await tf.ready();
      if (backend === "wasm") {
        info.flags = { simd: await tf.env().getAsync("WASM_HAS_SIMD_SUPPORT"), threads: await tf.env().getAsync("WASM_HAS_MULTITHREAD_SUPPORT") };
      }
      info.version = installedVersion("@tensorflow/tfjs-core");
      const registered = plugin ? await plugin.registerTfjsKernels(tf, { backends: [backend], bn: plugin.bn }) : null;
      const d = inputs(w);
      const axes = w.shape.map((_, i) => i).slice(0, -1);
      const count = countOf(w);
      const tensorsBefore = tf.memory().numTensors;
      const weight = tf.tensor1d(d.weight);
      const bias = tf.tensor1d(d.bias);
      let runningMean = tf.tensor1d(d.runningMean);
      let runningVar = tf.tensor1d(d.runningVar);
      let last;
      let run;
      if (op === "train") {
        run = () => {
          if (last) tf.dispose([last.mean, last.variance]);
          const [y, mean, variance, rm, rv] = tf.tidy(() => {
            const x = tf.tensor(d.x, w.shape, "float32");
            const m = tf.moments(x, axes);
            const y = tf.batchNorm(x, m.mean, m.variance, bias, weight, EPS);
            const rm = tf.add(tf.mul(runningMean, 1 - MOMENTUM), tf.mul(m.mean, MOMENTUM));
            const rv = tf.add(tf.mul(runningVar, 1 - MOMENTUM), tf.mul(m.variance, (MOMENTUM * count) / (count - 1)));
            return [y, m.mean, m.variance, rm, rv];
          });
          runningMean.dispose();
          runningVar.dispose();
          runningMean = rm;
          runningVar = rv;
          last = { y: y.dataSync(), mean, variance };
          y.dispose();
        };
      } else if (op === "infer") {
        run = () => {
          const y = tf.tidy(() => tf.batchNorm(tf.tensor(d.x, w.shape, "float32"), runningMean, runningVar, bias, weight, EPS));
          last = { y: y.dataSync() };
          y.dispose();
        };
      } else {
        const grads = tf.grads((x, g, b) => {
          const m = tf.moments(x, axes);
          return tf.batchNorm(x, m.mean, m.variance, b, g, EPS);
        });
        run = () => {
          const [dx, dw, db] = tf.tidy(() => grads([tf.tensor(d.x, w.shape, "float32"), weight, bias], tf.tensor(d.dy, w.shape, "float32")));
          last = { dx: dx.dataSync(), dweight: dw.dataSync(), dbias: db.dataSync() };
          tf.dispose([dx, dw, db]);
        };
      }
      return {
        run,
        outputs() {
          if (op !== "train") return last;
          // after the checked (first) call: running stats updated once from the initial ones
          const out = { y: last.y, mean: last.mean.dataSync(), runningMean: runningMean.dataSync(), runningVar: runningVar.dataSync() };
          out.invstd = Float32Array.from(last.variance.dataSync(), (v) => 1 / Math.sqrt(v + EPS));
          return out;
        },
        dispose() {
          registered?.unregister();
          if (last?.mean) tf.dispose([last.mean, last.variance]);
          tf.dispose([weight, bias, runningMean, runningVar]);
          const leaked = tf.memory().numTensors - tensorsBefore;
          if (leaked > 0) process.stderr.write(`tfjs-${backend}: ${leaked} tensors leaked on ${w.id} ${op}\n`);
        },
      };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// onnxruntime

const loadOrt = {
  web: lazy(async () => {
    const ort = await import("onnxruntime-web");
    ort.env.wasm.numThreads = 1;
    ort.env.wasm.proxy = false;
    ort.env.wasm.wasmPaths = `${path.dirname(require.resolve("onnxruntime-web/ort-wasm-simd-threaded.wasm"))}/`;
    return ort;
  }),
  node: lazy(async () => import("onnxruntime-node")),
};

/** The installed version of a package in bench/peers/node_modules (read directly: some packages' exports hide package.json). */
const installedVersion = (pkg) => JSON.parse(readFileSync(path.join(HERE, "node_modules", pkg, "package.json"), "utf8")).version;

/**
 * A one-node ONNX model (BatchNormalization, opset 15; training_mode=1 for train) run by
 * onnxruntime-web's wasm backend (in Node) or onnxruntime-node's native CPU provider, one thread.
 * ONNX's BatchNormalization is channels-first, and ONNX Runtime has no backward in its inference
 * builds. Each call wraps x in an ort.Tensor (no copy in JS), run() copies it in and y out.
 * Training mode's running_var follows ONNX: updated with the biased batch variance.
 */
export function ortImpl(flavor, color) {
  const pkg = flavor === "web" ? "onnxruntime-web" : "onnxruntime-node";
  return {
    id: `ort-${flavor}`,
    label: flavor === "web" ? "onnxruntime-web (wasm)" : "onnxruntime-node (native)",
    short: flavor === "web" ? "ORT web" : "ORT node",
    group: "peer",
    color,
    note: `${pkg}: one-node BatchNormalization model (opset 15, hand-encoded), ${flavor === "web" ? "wasm backend from node_modules, numThreads 1" : "CPU execution provider"}, intra/inter-op threads 1; channels-first only; no backward`,
    supports(w, op) {
      if (op === "backward") return "onnxruntime (inference builds) has no training backward";
      if (!OPS.includes(op)) return op;
      if (w.layout === "channels-last") return "ONNX BatchNormalization is channels-first (NCHW): see S1";
      return true;
    },
    async prepare(w, op) {
      const ort = await loadOrt[flavor]();
      this.version = installedVersion(pkg);
      const d = inputs(w);
      const c = channelsOf(w);
      const training = op === "train";
      const session = await ort.InferenceSession.create(batchNormModel({ shape: w.shape, training, eps: EPS, momentum: MOMENTUM }), {
        executionProviders: [flavor === "web" ? "wasm" : "cpu"],
        intraOpNumThreads: 1,
        interOpNumThreads: 1,
        executionMode: "sequential",
      });
      const fixed = {
        scale: new ort.Tensor("float32", d.weight, [c]),
        B: new ort.Tensor("float32", d.bias, [c]),
        input_mean: new ort.Tensor("float32", d.runningMean.slice(), [c]),
        input_var: new ort.Tensor("float32", d.runningVar.slice(), [c]),
      };
      let last;
      return {
        run: async () => {
          const r = await session.run({ X: new ort.Tensor("float32", d.x, w.shape), ...fixed });
          last = training ? { y: r.Y.data, runningMean: r.running_mean.data, runningVar: r.running_var.data } : { y: r.Y.data };
          for (const t of Object.values(r)) t.dispose?.();
        },
        outputs: () => last,
        semantics: { runningVar: "biased" },
        dispose: () => session.release(),
      };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// PyTorch (Debian's python3-torch), in a Python child process

const PYTHON = "/usr/bin/python3";

/** Whether `python3 -c 'import torch'` works; returns { ok, error }. */
export function torchAvailable() {
  const r = spawnSync(PYTHON, ["-c", "import torch, numpy"], { encoding: "utf8" });
  if (r.error) return { ok: false, error: r.error.message };
  if (r.status !== 0) return { ok: false, error: (r.stderr || `exit ${r.status}`).trim().split("\n").pop() };
  return { ok: true };
}

/** A persistent torch_bench.py process speaking JSON lines. */
class TorchProcess {
  constructor(tmpDir, threads) {
    this.tmpDir = tmpDir;
    this.child = spawn(PYTHON, [path.join(HERE, "torch_bench.py"), String(threads)], { stdio: ["pipe", "pipe", "inherit"] });
    this.lines = readline.createInterface({ input: this.child.stdout });
    this.waiting = [];
    this.exited = null;
    this.lines.on("line", (line) => this.waiting.shift()?.resolve(line));
    this.child.on("exit", (code) => {
      this.exited = `python exited with code ${code}`;
      for (const w of this.waiting.splice(0)) w.reject(new Error(this.exited));
    });
    this.child.on("error", (e) => {
      this.exited = e.message;
      for (const w of this.waiting.splice(0)) w.reject(e);
    });
    this.hello = this.next();
  }

  next() {
    if (this.exited) return Promise.reject(new Error(this.exited));
    return new Promise((resolve, reject) => this.waiting.push({ resolve: (l) => resolve(JSON.parse(l)), reject }));
  }

  async request(req) {
    const reply = this.next();
    this.child.stdin.write(`${JSON.stringify(req)}\n`);
    const r = await reply;
    if (!r.ok) throw new Error(`torch: ${r.error}`);
    return r;
  }

  close() {
    if (!this.exited) this.child.stdin.end(`${JSON.stringify({ cmd: "quit" })}\n`);
  }
}

/**
 * torch.nn.functional.batch_norm (train, infer) and its autograd backward on the same workloads,
 * timed inside Python (time.perf_counter, tinybench's rules), torch.set_num_threads(threads), in a
 * Python process of its own. Inputs go through .tmp files in `tmpDir` (named by thread count, so
 * two of these can share it); tensors then stay in torch, so no conversion is timed.
 */
export function torchImpl(tmpDir, color, threads = 1) {
  let proc = null;
  const impl = {
    id: threads > 1 ? `torch-t${threads}` : "torch",
    label: `PyTorch CPU (${threads} thread${threads > 1 ? "s" : ""})`,
    short: threads > 1 ? `PyTorch ×${threads}` : "PyTorch",
    group: "peer",
    color,
    threads,
    note: `torch.nn.functional.batch_norm and torch.autograd.grad of it, torch.set_num_threads(${threads}), timed in Python; tensors resident in torch (channels-last data as torch.channels_last)`,
    info: {},
    supports: (w, op) => (OPS.includes(op) ? true : op),
    async prepare(w, op) {
      proc ??= new TorchProcess(tmpDir, threads);
      Object.assign(impl.info, await proc.hello);
      const d = inputs(w);
      const files = {};
      for (const name of ["x", "dy", "weight", "bias", "runningMean", "runningVar"]) {
        files[name] = path.join(tmpDir, `torch${threads}-in-${name}.tmp`);
        writeFileSync(files[name], new Uint8Array(d[name].buffer, d[name].byteOffset, d[name].byteLength));
      }
      const r = await proc.request({ cmd: "setup", op, shape: w.shape, layout: w.layout, inputs: files, outputs: tmpDir });
      impl.info.memoryFormat = r.memoryFormat;
      const outputs = {};
      for (const [name, file] of Object.entries(r.outputs)) {
        const b = readFileSync(file);
        outputs[name] = new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
      }
      return {
        outputs: () => outputs,
        time: async (timing) => (await proc.request({ cmd: "time", ...timing })).samples,
        dispose: () => {
          for (const f of [...Object.values(files), ...Object.values(r.outputs)]) rmSync(f, { force: true });
        },
      };
    },
    close: () => proc?.close(),
  };
  return impl;
}
