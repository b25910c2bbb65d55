// The fused ReLU (activation: 'relu') against plain BN and against BN followed by a separate ReLU
// pass: a JS loop over y, and a second pass of this library (eval-mode batchNorm with identity
// statistics, eps 1e-30 so invstd is exactly 1, and activation 'relu', in place). Backward: fused
// against plain backward and against a JS loop that masks dy followed by plain backward. Zero-copy API
// on one backend, in interleaved batches (bench/harness.js): each ratio is the median of the
// per-round ratios, so a burst of load hits both sides alike. Every variant is checked against the
// float64 reference (workloads.js reference / reluReference) before anything is timed.
import { interleaved, median, quartiles } from "./harness.js";
import { zeroCopySetup } from "./impls.js";
import { reluInPlace, reluMask } from "./js-baselines.js";
import { channelsOf, check, inputs, reluReference } from "./workloads.js";

/** Fused BN + ReLU should cost at most this much more than plain BN (issue 10 item 2). */
export const RELU_TARGET = 1.05;

/** What each row compares, in the order timed (the first is the fused call, the others what it is divided by). */
export const RELU_VARIANTS = {
  fused: "fused BN+ReLU",
  plain: "plain BN",
  js: "BN, then a JS ReLU loop (forward) / a JS loop masking dy (backward)",
  library: "BN, then a second library pass (forward only)",
};

/**
 * The variants for workload `w` and `op` on `bn`: { id, run, outputs, ref } each (ref: the answer to
 * check against, the plain reference when absent), and dispose.
 * @param {import('../dist/index.js').Backend} bn
 * @param {import('./workloads.js').Workload} w
 * @param {'train' | 'infer' | 'backward'} op
 */
function variants(bn, w, op) {
  const setups = [];
  const setup = (o, which = op) => {
    const z = zeroCopySetup(bn, w, which, undefined, o);
    setups.push(z);
    return z;
  };
  const dispose = () => setups.forEach((z) => z.free());
  if (op !== "backward") {
    const plain = setup({});
    const fused = setup({ activation: "relu" });
    const c = channelsOf(w);
    const identity = { zeros: bn.alloc(c), ones: bn.alloc(c) };
    identity.ones.data.fill(1);
    setups.push({ free: () => [identity.zeros, identity.ones].forEach((t) => t.free()) });
    const out = plain.tensors.out;
    const second = { shape: w.shape, layout: w.layout, training: false, runningMean: identity.zeros, runningVar: identity.ones, eps: 1e-30, activation: "relu", out };
    const relu = reluReference(w, op);
    return {
      list: [
        { id: "fused", run: fused.call, outputs: fused.outputs, ref: relu },
        { id: "plain", run: plain.call, outputs: plain.outputs },
        { id: "js", run: () => { plain.call(); reluInPlace(out.data); }, outputs: () => ({ y: out.data }), ref: relu },
        { id: "library", run: () => { plain.call(); bn.batchNorm(out, second); }, outputs: () => ({ y: out.data }), ref: relu },
      ],
      dispose,
    };
  }
  // backward from the mean and invstd of a fused training forward, and through the outputs it clipped
  const forward = setup({ activation: "relu" }, "train");
  forward.call();
  const f = forward.outputs();
  const stats = { mean: f.mean, invstd: f.invstd };
  const y = f.y.slice();
  const plain = setup({ stats });
  const fused = setup({ stats, activation: "relu" });
  const masked = setup({ stats });
  const dy = inputs(w).dy;
  const relu = reluReference(w, op, { y, ...stats });
  return {
    list: [
      { id: "fused", run: fused.call, outputs: fused.outputs, ref: relu },
      { id: "plain", run: plain.call, outputs: plain.outputs },
      { id: "js", run: () => { reluMask(dy, y, masked.tensors.dy.data); masked.call(); }, outputs: masked.outputs, ref: relu },
    ],
    dispose,
  };
}

/**
 * One row per (workload, op): the median ms per call of each variant, and the fused call's time over
 * each other's (median of the per-round ratios, with quartiles), or why nothing was timed.
 * @param {import('../dist/index.js').Backend} bn
 * @param {{ w: import('./workloads.js').Workload, op: string }[]} pairs
 * @param {{ rounds: number, targetMs: number, log: (line: string) => void }} o
 */
export async function reluRows(bn, pairs, { rounds, targetMs, log }) {
  const rows = [];
  for (const { w, op } of pairs) {
    const row = { workload: w.id, op, backend: bn.backend, threads: bn.threads, target: RELU_TARGET };
    let v = null;
    try {
      v = variants(bn, w, op);
      const failures = [];
      row.errors = {};
      for (const x of v.list) {
        x.run();
        const c = check(w, op, x.outputs(), {}, x.ref);
        row.errors[x.id] = c.error;
        if (!c.ok) failures.push(`${x.id}: ${c.message}`);
      }
      if (failures.length) {
        Object.assign(row, { status: "wrong", reason: failures.join("; ") });
      } else {
        const per = await interleaved(v.list.map((x) => x.run), rounds, targetMs);
        row.status = "ok";
        row.ms = Object.fromEntries(v.list.map((x, i) => [x.id, median(per[i])]));
        row.ratio = Object.fromEntries(v.list.slice(1).map((x, i) => [x.id, quartiles(per[0].map((t, r) => t / per[i + 1][r]))]));
      }
    } catch (e) {
      Object.assign(row, { status: "failed", reason: e instanceof Error ? `${e.name}: ${e.message}` : String(e) });
    } finally {
      v?.dispose();
    }
    rows.push(row);
    const ratios = row.ratio ? Object.entries(row.ratio).map(([k, q]) => `/${k} ${q[1].toFixed(3)}`).join(", ") : row.reason;
    log(`relu ${w.id} ${op}: ${row.ms ? `fused ${row.ms.fused.toFixed(3)} ms, ` : ""}${ratios}`);
  }
  return rows;
}
