// npm run bench:peers [-- --full] [--workloads=S1,S5] [--ops=train,infer] [--impls=tfjs-wasm,torch] [--time=ms]
//
// This library next to its peers on the same workloads, checked against the same float64 reference
// before timing: TensorFlow.js (cpu, wasm), onnxruntime-web (wasm) and onnxruntime-node (native),
// and PyTorch's CPU kernel where Debian's python3-torch is installed. The peers live in their own
// package (bench/peers/package.json), installed here on first use with `npm install --ignore-scripts`
// so they never burden the library's own install. Writes peers.{json,svg,md} to bench/results/local/
// (git-ignored), or with --save to bench/results/ (tracked, shown in the README).
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const started = performance.now();
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
const { ortImpl, tfjsImpl, torchAvailable, torchImpl } = await import("./peers.js");

const args = parseArgs(process.argv.slice(2));
if (args.help) {
  console.log(`npm run bench:peers [-- options]
  --full                 1 s per task and every op on S4 (default: quick timing)
  --workloads=S1,S5      subset of ${WORKLOADS.map((w) => w.id).join(",")}
  --ops=train,infer      subset of ${OPS.map((o) => o.id).join(",")}
  --impls=a,b            subset of simd-copy,simd-zero,tfjs-cpu,tfjs-wasm,ort-web,ort-node,torch (copy always runs)
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

const bn = await init({ backend: "simd" }).catch(() => init({ backend: "scalar" }));
const torchCheck = torchAvailable();
const torch = torchCheck.ok ? torchImpl(outDir, "#6a3d9a") : null;
if (!torch) log(`PyTorch: skipped (/usr/bin/python3 -c 'import torch, numpy' failed: ${torchCheck.error})`);

const all = [
  copyingImpl(bn, "#fdae6b"),
  zeroCopyImpl(bn, "#d94801"),
  tfjsImpl("cpu", "#bdbdbd"),
  tfjsImpl("wasm", "#737373"),
  ortImpl("web", "#9ecae1"),
  ortImpl("node", "#2171b5"),
  ...(torch ? [torch] : []),
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
  torch?.close();
}

const versions = {
  "wasm-batchnorm": `${bn.backend} backend`,
  tfjs: impls.find((m) => m.id.startsWith("tfjs"))?.info?.version ?? null,
  "tfjs-backend-wasm flags": impls.find((m) => m.id === "tfjs-wasm")?.info?.flags ?? null,
  "onnxruntime-web": impls.find((m) => m.id === "ort-web")?.version ?? null,
  "onnxruntime-node": impls.find((m) => m.id === "ort-node")?.version ?? null,
  torch: torch ? { version: torch.info.torch ?? null, threads: torch.info.threads ?? null, numpy: torch.info.numpy ?? null } : `skipped: ${torchCheck.error}`,
};
const layoutNote = [
  "Layouts: tfjs normalizes over the last axis (channels-last), so it runs on S5 (NHWC, S1's size) and S3 ([N, C]) only; ONNX BatchNormalization is channels-first, so onnxruntime runs on S1-S4 only.",
  "tfjs backward is tf.grads of moments + batchNorm (it recomputes the forward; tfjs has no standalone backward). onnxruntime has no backward. onnxruntime's training-mode running_var uses the biased batch variance (ONNX spec); it is checked against that.",
  "Copies: tfjs and onnxruntime take Float32Arrays and return Float32Arrays on every call, as our copying API does; PyTorch is timed inside Python on resident tensors (compare with our zero-copy API).",
  "Speed column: median of wasm-batchnorm's copying API / this median (above 1: faster than ours).",
  ...(torch ? [] : [`PyTorch: skipped (${torchCheck.error}).`]),
].join(" ");

const json = derive({
  kind: "peers",
  title: "wasm-batchnorm vs peers",
  environment: { ...environment(), versions },
  settings: {
    mode: full ? "full" : "quick",
    timing,
    threads: "one thread everywhere (tfjs-backend-wasm setThreadsCount(1), onnxruntime numThreads/intraOp/interOp 1, torch.set_num_threads(1))",
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
