// npm run bench:peers [-- --full] [--workloads=S1,S5] [--ops=train,infer] [--impls=tfjs-wasm,torch] [--time=ms]
//
// This library next to its peers on the same workloads, checked against the same float64 reference
// before timing: TensorFlow.js (cpu, wasm; each also with our wasm-batchnorm/tfjs kernel plugin), onnxruntime-web (wasm) and onnxruntime-node (native),
// and PyTorch's CPU kernel where Debian's python3-torch is installed, on one thread and on one thread
// per core; our zero-copy path on 1 thread and on the default threads ('auto'). The peers live in their own
// package (bench/peers/package.json), installed here on first use with `npm install --ignore-scripts`
// so they never burden the library's own install. Writes peers.{json,svg,md} to bench/results/local/
// (git-ignored), or with --save to bench/results/ (tracked, shown in the README).
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, mkdirSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const started = performance.now();
const loadAtStart = os.loadavg();
const log = (line) => process.stderr.write(`${line}\n`);

/** Installs bench/peers' dependencies when any is missing or at another version; returns an error message or null. */
function ensureInstalled() {
  const pkg = JSON.parse(readFileSync(path.join(HERE, "package.json"), "utf8"));
  const missing = Object.entries(pkg.dependencies).filter(([name, version]) => {
    const file = path.join(HERE, "node_modules", name, "package.json");
    return !existsSync(file) || JSON.parse(readFileSync(file, "utf8")).version !== version;
  });
  if (!missing.length) return null;
  log(`installing peers into bench/peers/node_modules (${missing.map(([n, v]) => `${n}@${v}`).join(", ")}): npm install --ignore-scripts`);
  // --ignore-scripts: onnxruntime-node's install script downloads CUDA binaries (and fails offline);
  // its CPU binaries ship in the package.
  const r = spawnSync("npm", ["install", "--ignore-scripts", "--no-audit", "--no-fund"], { cwd: HERE, stdio: ["ignore", 2, 2], shell: process.platform === "win32" });
  if (r.error) return `npm install failed: ${r.error.message}`;
  if (r.status !== 0) return `npm install --ignore-scripts in bench/peers exited with code ${r.status}`;
  return null;
}

const installError = ensureInstalled();
if (installError) log(`${installError}; peers that cannot load are reported as failed`);

const { FULL, PRISTINE_NOTE, QUICK, Runner, parseArgs, plan, resultsDir } = await import("../harness.js");
const { copyYardstick, copyingImpl, zeroCopyImpl } = await import("../impls.js");
const { consoleTable, derive, environment, writeResults } = await import("../report.js");
const { OPS, TOLERANCE_DEFINITION, TRAFFIC_DEFINITION, WORKLOADS, bytesOf, channelsOf, countOf, lengthOf } = await import("../workloads.js");
const { init } = await import("../../dist/index.js");
const { registerTfjsKernels } = await import("../../dist/tfjs.js");
const { ortImpl, tfjsImpl, torchAvailable, torchImpl } = await import("./peers.js");

const args = parseArgs(process.argv.slice(2));
if (args.help) {
  console.log(`npm run bench:peers [-- options]
  --full                 1 s per task and every op on S4 (default: quick timing)
  --workloads=S1,S5      subset of ${WORKLOADS.map((w) => w.id).join(",")}
  --ops=train,infer      subset of ${OPS.map((o) => o.id).join(",")}
  --impls=a,b            subset of simd-copy,simd-zero,simd-zero-t<default threads>,tfjs-cpu,tfjs-wasm,tfjs-cpu-plugin,tfjs-wasm-plugin,ort-web,ort-node,torch,torch-t<cores>
                         (copy always runs)
  --time=ms              time budget per task
  --save                 write bench/results/peers.* (tracked; a complete run only), not bench/results/local/
  --out=dir              where peers.{json,svg,md} go instead`);
  process.exit(0);
}
const full = args.full;
const timing = { ...(full ? FULL : QUICK), ...(args.time ? { time: args.time } : {}) };
const pairs = plan({ workloads: args.workloads ?? WORKLOADS.map((w) => w.id), ops: args.ops ?? OPS.map((o) => o.id), quick: !full });
const workloads = [...new Set(pairs.map((p) => p.w))];
const outDir = resultsDir(args);
mkdirSync(outDir, { recursive: true });

const bn = await init({ backend: "simd", threads: 1 }).catch(() => init({ backend: "scalar", threads: 1 }));
// the default threads ('auto'): what `await init()` gives a user on this machine
const bnDefault = await init({ backend: bn.backend });
const defaultZero = bnDefault.threads > 1 ? { ...zeroCopyImpl(bnDefault, "#a50f15"), short: `${bn.backend} zero-copy ×${bnDefault.threads} (default)` } : null;
const torchCheck = torchAvailable();
const cores = os.cpus().length; // as Python's os.cpu_count()
const torches = torchCheck.ok ? [torchImpl(outDir, "#6a3d9a", 1), ...(cores > 1 ? [torchImpl(outDir, "#3f007d", cores)] : [])] : [];
if (!torches.length) log(`PyTorch: skipped (/usr/bin/python3 -c 'import torch, numpy' failed: ${torchCheck.error})`);

const all = [
  copyingImpl(bn, "#fdae6b"),
  zeroCopyImpl(bn, "#d94801"),
  ...(defaultZero ? [defaultZero] : []),
  tfjsImpl("cpu", "#bdbdbd"),
  tfjsImpl("wasm", "#737373"),
  tfjsImpl("cpu", "#c7e9c0", { bn, registerTfjsKernels }),
  tfjsImpl("wasm", "#41ab5d", { bn, registerTfjsKernels }),
  ortImpl("web", "#9ecae1"),
  ortImpl("node", "#2171b5"),
  ...torches,
];
const impls = args.impls ? all.filter((m) => args.impls.includes(m.id)) : all;
const yardstick = copyYardstick(bn);
const supportedCount = (list) => pairs.reduce((n, { w, op }) => n + list.filter((m) => m.supports(w, op) === true).length, 0);
const pristine = impls.filter((m) => m.pristine);
const rest = impls.filter((m) => !m.pristine);
const runner = new Runner({ timing, total: supportedCount(pristine) + workloads.length + supportedCount(rest) });
log(`wasm-batchnorm peers: ${full ? "full" : "quick"} run, ${runner.total} tasks, time ${timing.time} ms / min ${timing.iterations} iterations per task`);

try {
  // Pure-JS peers first, before any wasm memory grows (PRISTINE_NOTE).
  for (const { w, op } of pairs) for (const impl of pristine) await runner.measure(impl, w, op, { phase: "pristine" });
  for (const w of workloads) {
    await runner.measure(yardstick, w, "copy");
    for (const { op } of pairs.filter((p) => p.w === w)) for (const impl of rest) await runner.measure(impl, w, op);
  }
} finally {
  for (const t of torches) t.close();
}

const versions = {
  "wasm-batchnorm": `${bn.backend} backend, 1 thread and the default ${bnDefault.threads}`,
  tfjs: impls.find((m) => m.id.startsWith("tfjs"))?.info?.version ?? null,
  "tfjs-backend-wasm flags": impls.find((m) => m.id === "tfjs-wasm")?.info?.flags ?? null,
  "onnxruntime-web": impls.find((m) => m.id === "ort-web")?.version ?? null,
  "onnxruntime-node": impls.find((m) => m.id === "ort-node")?.version ?? null,
  torch: torches.length
    ? { version: torches[0].info.torch ?? null, threads: torches.map((t) => t.info.threads ?? null), numpy: torches[0].info.numpy ?? null }
    : `skipped: ${torchCheck.error}`,
};
const layoutNote = [
  "Layouts: tfjs normalizes over the last axis (channels-last), so it runs on S5 (NHWC, S1's size) and S3 ([N, C]) only; ONNX BatchNormalization is channels-first, so onnxruntime runs on S1-S4 only.",
  "tfjs backward is tf.grads of moments + batchNorm (it recomputes the forward; tfjs has no standalone backward). onnxruntime has no backward. onnxruntime's training-mode running_var uses the biased batch variance (ONNX spec); it is checked against that.",
  "Copies: tfjs and onnxruntime take Float32Arrays and return Float32Arrays on every call, as our copying API does; PyTorch is timed inside Python on resident tensors (compare with our zero-copy API).",
  "tfjs + plugin: the same tfjs calls with tfjs's FusedBatchNorm kernel re-registered on wasm-batchnorm/tfjs (registerTfjsKernels, our 1-thread backend); tf.moments, the running-average update and the backward's other kernels stay tfjs's.",
  "Speed column: median of wasm-batchnorm's copying API / this median (above 1: faster than ours).",
  ...(torches.length ? [] : [`PyTorch: skipped (${torchCheck.error}).`]),
].join(" ");

const json = derive({
  kind: "peers",
  title: "wasm-batchnorm vs peers",
  environment: { ...environment(loadAtStart), versions },
  settings: {
    mode: full ? "full" : "quick",
    timing,
    threads: `one thread (tfjs-backend-wasm setThreadsCount(1), onnxruntime numThreads/intraOp/interOp 1, torch.set_num_threads(1), wasm-batchnorm init({ threads: 1 })), except PyTorch ×${cores} (torch.set_num_threads(${cores}), one per core) and our zero-copy path on the default threads (init(): ${bnDefault.threads})`,
    baseline: `${bn.backend}-copy`,
    trafficDefinition: TRAFFIC_DEFINITION,
    toleranceDefinition: TOLERANCE_DEFINITION,
    pristineNote: PRISTINE_NOTE,
    layoutNote,
    installError,
  },
  workloads: workloads.map((w) => ({ ...w, length: lengthOf(w), channels: channelsOf(w), count: countOf(w), bytes: bytesOf(w) })),
  ops: OPS,
  impls: [...impls, yardstick].map(({ id, label, short, group, note, color }) => ({ id, label, short, group, note, color })),
  results: runner.results,
});
json.durationSeconds = Math.round((performance.now() - started) / 100) / 10;
console.log(consoleTable(json));
const files = writeResults(outDir, "peers", json);
console.log(`\nversions: ${JSON.stringify(versions)}`);
console.log(`wrote ${Object.values(files).map((f) => path.relative(process.cwd(), f)).join(", ")} in ${json.durationSeconds} s`);
