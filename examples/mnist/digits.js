// Digit sets as bytes: the compact binary format of the committed asset (data/digits.bin.gz, made
// by make-asset.mjs) and the conversion to the Float32Array rows the network trains on. No `node:`
// imports: the demo and the test read the asset with it (gunzip uses DecompressionStream, which
// browsers and Node 18+ have).
//
// Format (before gzip), little-endian: "WBNM" | u32 version (1) | u32 train count | u32 test count, then the train
// pixels (784 u8 per digit, 0..255, row-major 28x28), the train labels (u8), the test pixels, the
// test labels.

const MAGIC = 0x4d4e4257; // "WBNM"
const HEADER = 16;
export const PIXELS = 784;

/**
 * @typedef {object} ByteSet
 * @property {Uint8Array} pixels [n, 784] grey levels 0..255
 * @property {Uint8Array} labels n digits 0..9
 * @property {number} n
 */

/**
 * @param {{ train: ByteSet, test: ByteSet }} sets
 * @returns {Uint8Array}
 */
export function encodeDigits({ train, test }) {
  const out = new Uint8Array(HEADER + (train.n + test.n) * (PIXELS + 1));
  const head = new DataView(out.buffer);
  head.setUint32(0, MAGIC, true);
  head.setUint32(4, 1, true);
  head.setUint32(8, train.n, true);
  head.setUint32(12, test.n, true);
  let at = HEADER;
  for (const set of [train, test]) {
    out.set(set.pixels.subarray(0, set.n * PIXELS), at);
    out.set(set.labels.subarray(0, set.n), at + set.n * PIXELS);
    at += set.n * (PIXELS + 1);
  }
  return out;
}

/**
 * Reads encodeDigits' format; throws a RangeError on anything else.
 * @param {Uint8Array} bytes
 * @returns {{ train: ByteSet, test: ByteSet }}
 */
export function decodeDigits(bytes) {
  const head = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < HEADER || head.getUint32(0, true) !== MAGIC || head.getUint32(4, true) !== 1) {
    throw new RangeError("digits: not a version-1 WBNM digit file");
  }
  const counts = [head.getUint32(8, true), head.getUint32(12, true)];
  if (bytes.length !== HEADER + (counts[0] + counts[1]) * (PIXELS + 1)) {
    throw new RangeError(`digits: expected ${HEADER + (counts[0] + counts[1]) * (PIXELS + 1)} bytes for ${counts[0]} + ${counts[1]} digits, got ${bytes.length}`);
  }
  let at = HEADER;
  const [train, test] = counts.map((n) => {
    const set = { pixels: bytes.subarray(at, at + n * PIXELS), labels: bytes.subarray(at + n * PIXELS, at + n * (PIXELS + 1)), n };
    at += n * (PIXELS + 1);
    return set;
  });
  return { train, test };
}

/**
 * Decodes a gzipped digit file (data/digits.bin.gz) into training-ready sets.
 * @param {Uint8Array} gzipped
 * @returns {Promise<{ train: import("./mlp.js").DigitSet, test: import("./mlp.js").DigitSet }>}
 */
export async function loadDigits(gzipped) {
  const stream = new Blob([/** @type {BlobPart} */ (gzipped)]).stream().pipeThrough(new DecompressionStream("gzip"));
  const { train, test } = decodeDigits(new Uint8Array(await new Response(stream).arrayBuffer()));
  return { train: toFloat(train), test: toFloat(test) };
}

/**
 * Pixels scaled to [0, 1] as the network's Float32Array rows.
 * @param {ByteSet} set
 * @returns {import("./mlp.js").DigitSet}
 */
export function toFloat(set) {
  const x = new Float32Array(set.n * PIXELS);
  for (let i = 0; i < x.length; i++) x[i] = set.pixels[i] / 255;
  return { x, labels: set.labels.slice(0, set.n), n: set.n };
}
