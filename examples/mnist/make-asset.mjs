// node examples/mnist/make-asset.mjs: writes data/digits.bin.gz, the digits the test and the demo
// train on without the mnist package: the first 4,000 training and 1,000 test digits of the
// example's fixed split (data.mjs), in digits.js' format, gzipped (3.9 MB -> about 0.8 MB).
import { writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { loadSplit } from "./data.mjs";
import { PIXELS, encodeDigits } from "./digits.js";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const split = loadSplit();
const head = (/** @type {import("./digits.js").ByteSet} */ set, /** @type {number} */ n) => ({ pixels: set.pixels.subarray(0, n * PIXELS), labels: set.labels.subarray(0, n), n });
const bytes = encodeDigits({ train: head(split.train, 4000), test: head(split.test, 1000) });
const file = path.join(HERE, "data", "digits.bin.gz");
writeFileSync(file, gzipSync(bytes, { level: 9 }));
console.log(`wrote ${path.relative(process.cwd(), file)}: 4,000 + 1,000 digits, ${bytes.length} bytes before gzip`);
