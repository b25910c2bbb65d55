// Shared machinery of the direct kernel tests (XNNPACK-style): the builds, step constants read from
// the kernel sources, XNNPACK's tail classes, a guarded arena that proves a kernel wrote nothing
// outside what it may write, per-channel test data (normal to hostile), and the accuracy checks.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { fileURLToPath } from "node:url";
import { instantiate, type BackendName, type Kernels } from "../../src/kernels.js";
import type { WasmMemory } from "../../src/memory.js";
import { randn } from "../reference.js";

/** Every build the package ships: both kernel sets and their shared-memory twins (the pool's). */
export const BUILDS: { name: BackendName; threaded: boolean; label: string }[] = [
  { name: "simd", threaded: false, label: "simd" },
  { name: "scalar", threaded: false, label: "scalar" },
  { name: "simd", threaded: true, label: "simd-threads" },
  { name: "scalar", threaded: true, label: "scalar-threads" },
];

export interface Loaded {
  kernels: Kernels;
  memory: WasmMemory;
}

const loaded = new Map<string, Promise<Loaded>>();

/** One instance per build per test file. */
export function load(build: (typeof BUILDS)[number]): Promise<Loaded> {
  let p = loaded.get(build.label);
  if (!p) {
    p = instantiate(build.name, build.threaded).then(({ kernels, memory }) => ({ kernels, memory }));
    loaded.set(build.label, p);
  }
  return p;
}

const assemblyDir = fileURLToPath(new URL("../../assembly/", import.meta.url));

/** The text of assembly/<file>. */
function kernelSource(file: string): string {
  return readFileSync(assemblyDir + file, "utf8");
}

/**
 * The loop steps of a kernel file: every number N matched by `loop` (e.g. /q \+ (\d+) <= end/g, a
 * step of N bytes), divided by `unit` (4 for bytes to floats), plus 1 (every loop has a scalar tail).
 * Throws when the source has none, so a kernel rewrite cannot silently leave a tester without cases.
 */
export function loopSteps(file: string, loop: RegExp, unit = 1): number[] {
  const found = [...kernelSource(file).matchAll(loop)].map((m) => Number(m[1]) / unit);
  if (found.length === 0) throw new Error(`no loop matching ${loop} in assembly/${file}`);
  if (!found.every((k) => Number.isInteger(k) && k > 0)) throw new Error(`loop steps ${found} in assembly/${file} are not whole`);
  return [...new Set([1, ...found])].sort((a, b) => b - a);
}

/** The value of `const NAME = <integer>` (any type annotation) in a kernel file. */
export function sourceConstant(file: string, name: string): number {
  const m = new RegExp(`const\\s+${name}\\s*(?::\\s*\\w+)?\\s*=\\s*(-?\\d+)\\s*;`).exec(kernelSource(file));
  if (!m) throw new Error(`no integer constant ${name} in assembly/${file}`);
  return Number(m[1]);
}

/** XNNPACK's tail classes of a loop step k: eq k, div k, lt k, gt k (for k = 1: 1, 2, 3). */
function tailClasses(k: number): [string, number[]][] {
  const span = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);
  if (k === 1) return [["eq_1", [1]], ["gt_1", [2, 3]]];
  return [
    [`eq_${k}`, [k]],
    [`div_${k}`, [2 * k, 3 * k]],
    [`lt_${k}`, span(1, k)],
    [`gt_${k}`, span(k + 1, 2 * k)],
  ];
}

/** Tail classes of every step (steps of 1 only where they are the only step). */
export function sizeCases(steps: number[]): [string, number[]][] {
  const wide = steps.filter((k) => k > 1);
  return (wide.length ? wide : [1]).flatMap(tailClasses);
}

const GUARD = 64;
const GUARD_BYTE = 0xa5;
/** NaN bit patterns that mark a never-written element (NaN, so a kernel reading one shows it). */
const SENTINEL32 = 0x7fc1b2c3;
const SENTINEL64_HI = 0x7ff8b2c3;

export interface Buf {
  name: string;
  ptr: number;
  length: number;
  bytes: 4 | 8;
  /** Elements the kernel under test may write. */
  writable: (i: number) => boolean;
  /** The allocation: GUARD bytes, the misalignment, the elements, GUARD bytes. */
  block: { ptr: number; bytes: number };
}

/**
 * Buffers in one backend's wasm memory, each between two guards of GUARD bytes. `seal()` snapshots
 * every byte; `stray()` lists bytes that changed outside the writable elements (guards included).
 */
export class Arena {
  private readonly bufs: Buf[] = [];
  private snapshots: Uint8Array[] = [];

  constructor(private readonly memory: WasmMemory) {}

  /**
   * An f32 buffer of `length` elements with content `init` (read-only by default); elements that
   * `init` does not cover hold the NaN sentinel. `misalign` shifts it by that many floats.
   */
  f32(name: string, length: number, init?: ArrayLike<number>, writable: (i: number) => boolean = () => false, misalign = 0): Buf {
    return this.add(name, length, 4, init, writable, misalign);
  }

  f64(name: string, length: number, init?: ArrayLike<number>, writable: (i: number) => boolean = () => false): Buf {
    return this.add(name, length, 8, init, writable, 0);
  }

  private add(name: string, length: number, bytes: 4 | 8, init: ArrayLike<number> | undefined, writable: (i: number) => boolean, misalign: number): Buf {
    const total = 2 * GUARD + misalign * 4 + length * bytes;
    const block = { ptr: this.memory.alloc(total, name), bytes: total };
    const buf: Buf = { name, ptr: block.ptr + GUARD + misalign * 4, length, bytes, writable, block };
    this.bufs.push(buf);
    new Uint8Array(this.memory.buffer, block.ptr, total).fill(GUARD_BYTE);
    const words = new Uint32Array(this.memory.buffer, buf.ptr, (length * bytes) / 4);
    if (bytes === 4) words.fill(SENTINEL32);
    else for (let i = 0; i < length; i++) [words[2 * i], words[2 * i + 1]] = [SENTINEL32, SENTINEL64_HI];
    if (init) this.view(buf).set(Array.from(init).slice(0, length));
    return buf;
  }

  view(b: Buf): Float32Array | Float64Array {
    return b.bytes === 4 ? this.memory.f32(b.ptr, b.length) : this.memory.f64(b.ptr, b.length);
  }

  /** A copy of the buffer's elements as numbers. */
  read(b: Buf): Float64Array {
    return Float64Array.from(this.view(b));
  }

  /** Snapshots every buffer and its guards; call right before the kernel under test. */
  seal(): void {
    this.snapshots = this.bufs.map((b) => new Uint8Array(this.memory.buffer, b.block.ptr, b.block.bytes).slice());
  }

  /** Messages for bytes written outside the writable elements since seal(). */
  stray(): string[] {
    const out: string[] = [];
    this.bufs.forEach((b, k) => {
      const now = new Uint8Array(this.memory.buffer, b.block.ptr, b.block.bytes);
      const was = this.snapshots[k];
      const first = b.ptr - b.block.ptr, end = first + b.length * b.bytes;
      for (let i = 0; i < now.length; i++) {
        if (now[i] === was[i]) continue;
        const el = Math.floor((i - first) / b.bytes);
        if (i >= first && i < end) {
          if (b.writable(el)) continue;
          out.push(`${b.name}[${el}] written outside its writable range`);
          i = first + (el + 1) * b.bytes - 1; // one message per element
        } else {
          out.push(`${b.name}: guard byte ${i < first ? i - first : i - end} ${i < first ? "before the start" : "past the end"} written`);
        }
        if (out.length > 8) return;
      }
    });
    return out;
  }

  release(): void {
    for (const b of this.bufs) this.memory.release(b.block.ptr);
    this.bufs.length = 0;
  }
}

/** Allocates an arena, runs `body`, releases it even when the body throws. */
export async function withArena<T>(k: Loaded, body: (a: Arena) => T | Promise<T>): Promise<T> {
  const a = new Arena(k.memory);
  try {
    return await body(a);
  } finally {
    a.release();
  }
}

/**
 * A tensor with `c` channels of `count` values each, as the kernels see it: channels-first
 * [n, c, s] (count = n * s; value j of a channel sits in image j / s at offset j % s) or
 * channels-last [rows, c] (count = rows; value j is row j).
 */
export interface Geometry {
  layout: "channels-first" | "channels-last";
  n: number;
  c: number;
  s: number;
}

export function count(g: Geometry): number {
  return g.n * g.s;
}

export function length(g: Geometry): number {
  return g.n * g.c * g.s;
}

/** Flat index of value j of channel ch. */
export function at(g: Geometry, ch: number, j: number): number {
  return g.layout === "channels-last" ? j * g.c + ch : (Math.floor(j / g.s) * g.c + ch) * g.s + (j % g.s);
}

/** The channel of flat index i. */
export function channelOf(g: Geometry, i: number): number {
  return g.layout === "channels-last" ? i % g.c : Math.floor(i / g.s) % g.c;
}

/**
 * Per-channel distributions. "huge" (mean 1e37, spread 1e34), "wide" (+-1e38 in pairs: mean near 0,
 * invstd near 1e-38) and "tiny" (mean 1e-30, spread 1e-33; with eps = 0) take the scaled forms.
 */
export type Kind = "normal" | "offset" | "pilot-miss" | "huge" | "wide" | "tiny" | "constant" | "nonfinite";

/**
 * Whether a channel of this kind must take the scaled forms of coefficients.ts with this eps and
 * variance: a mean past 2^100 ("huge"; "wide" when its count is odd), or a coefficient past 2^-100
 * ("wide") or 2^100 ("tiny" with eps = 0, unless one value makes invstd infinite).
 */
function mustScale(kind: Kind, eps: number, variance: number): boolean {
  return kind === "huge" || kind === "wide" || (kind === "tiny" && eps === 0 && variance > 0);
}

/** Values the statistics kernels take their pilot shift from (stats_channels_first.ts, pilotOf). */
export const PILOT_SAMPLES = loopSteps("stats_channels_first.ts", /min\(count, (\d+)\)/g)[0];

/** Positions of the pilot samples for a channel of `count` values, as pilotOf takes them. */
function pilotPositions(count: number): Set<number> {
  const m = Math.min(count, PILOT_SAMPLES);
  return new Set(Array.from({ length: m }, (_, i) => Math.floor((i * count) / m)));
}

/** The values of one channel: `count` float32s of the given kind. */
function channelValues(kind: Kind, count: number, seed: number): Float32Array {
  const z = randn(count, seed);
  switch (kind) {
    case "normal":
      return z;
    case "offset":
      return z.map((v) => 1e4 + v);
    case "pilot-miss": {
      // the pilot samples sit far from the rest: the shifted sums cancel and M2 is redone in f64
      const p = pilotPositions(count);
      return z.map((v, j) => (p.has(j) ? 3e3 + v : v));
    }
    case "huge":
      return z.map((v) => 1e37 + 1e34 * v);
    case "wide":
      return z.map((_, j) => (j % 2 ? -1 : 1) * 1e38 * (1 + 0.5 * Math.abs(z[j & ~1])));
    case "tiny":
      return z.map((v) => 1e-30 + 1e-33 * v);
    case "constant":
      return new Float32Array(count).fill(0.3);
    case "nonfinite": {
      const out = z.slice();
      const which = seed % 4;
      if (which === 0) out[count >> 1] = Infinity;
      else if (which === 1) out[0] = -Infinity;
      else if (which === 2) out[count - 1] = NaN;
      else {
        out[0] = Infinity;
        out[count - 1] = -Infinity;
      }
      return out;
    }
  }
}

/** A tensor whose channel ch has kinds[ch % kinds.length]. */
export function tensor(g: Geometry, kinds: Kind[], seed: number): Float32Array {
  const x = new Float32Array(length(g));
  for (let ch = 0; ch < g.c; ch++) {
    const v = channelValues(kinds[ch % kinds.length], count(g), seed * 131 + ch);
    for (let j = 0; j < v.length; j++) x[at(g, ch, j)] = v[j];
  }
  return x;
}

/** The values of channel ch of tensor t, in channel order. */
export function channel(g: Geometry, t: ArrayLike<number>, ch: number): Float64Array {
  return Float64Array.from({ length: count(g) }, (_, j) => t[at(g, ch, j)]);
}

/** Two-pass float64 statistics of one channel: sum, mean, biased variance. */
export function stats64(v: ArrayLike<number>): { sum: number; mean: number; variance: number } {
  let sum = 0;
  for (let j = 0; j < v.length; j++) sum += v[j];
  const mean = sum / v.length;
  let m2 = 0;
  for (let j = 0; j < v.length; j++) m2 += (v[j] - mean) ** 2;
  return { sum, mean, variance: m2 / v.length };
}

export const ULP32 = 2 ** -23;

/** Collects the failures of one case, each prefixed with the case; `failures` should end up empty. */
export class Checks {
  readonly failures: string[] = [];

  constructor(readonly label: string) {}

  fail(msg: string): void {
    if (this.failures.length < 12) this.failures.push(`${this.label}: ${msg}`);
  }

  /** |got - want| <= tol, or both NaN, or equal infinities. */
  close(what: string, got: number, want: number, tol: number): void {
    if (Object.is(got, want) || (Number.isNaN(got) && Number.isNaN(want))) return;
    if (!(Math.abs(got - want) <= tol)) this.fail(`${what} = ${got}, expected ${want} (tolerance ${tol.toExponential(2)})`);
  }

  /**
   * Every element of `got` within 8 float32 ulps of `scale`, by default the largest |want| (the
   * project's accuracy bar), or within the spacing of subnormal float32s (2^-149) where that bar is
   * finer than any float32 can be (outputs near 1e-40); non-finite where `want` is finite always fails.
   */
  bar(what: string, got: ArrayLike<number>, want: ArrayLike<number>, scale?: number): void {
    let m = scale ?? 0;
    if (scale === undefined) for (let i = 0; i < want.length; i++) m = Math.max(m, Math.abs(want[i]));
    const tol = Math.max(8 * ULP32 * m, 2 ** -149);
    for (let i = 0; i < want.length; i++) {
      if (!Number.isFinite(got[i]) && Number.isFinite(want[i])) this.fail(`${what}[${i}] = ${got[i]}, expected ${want[i]}`);
      else this.close(`${what}[${i}]`, got[i], want[i], tol);
    }
  }

  untouched(a: Arena): void {
    for (const m of a.stray()) this.fail(m);
  }
}

/** A half-open channel range as text. */
export const range = (c0: number, c1: number): string => `[${c0}, ${c1})`;

/**
 * Channel sub-ranges of c channels worth testing: whole, each end trimmed, both trimmed, one middle
 * channel, and (c >= 5) two trimmed from each end, so a range starts and ends off a vector of 4.
 */
export function subRanges(c: number): [number, number][] {
  const out: [number, number][] = [[0, c]];
  if (c > 1) out.push([1, c], [0, c - 1]);
  if (c > 2) out.push([1, c - 1], [c >> 1, (c >> 1) + 1]);
  if (c > 4) out.push([2, c - 2]);
  return out;
}

/** Per-channel f32 weight (signed, away from 0) and bias, from a seed. */
export function affine(c: number, seed: number): { weight: Float32Array; bias: Float32Array } {
  const z = randn(2 * c, seed + 7);
  return {
    weight: Float32Array.from({ length: c }, (_, i) => (i % 3 === 2 ? -1 : 1) * (0.5 + Math.abs(z[i]))),
    bias: Float32Array.from({ length: c }, (_, i) => z[c + i]),
  };
}

/** Floats per row of a coefficient block of c channels (C rounded up to 4, see coefficients.ts). */
export const coefStride = (c: number): number => (c + 3) & ~3;

/** Index of the coefficient-block row `ROW_<name>` (read from assembly/coefficients.ts). */
export const coefRow = (name: string): number => sourceConstant("coefficients.ts", `ROW_${name}`);

/**
 * Checks channel ch's f64 mean and biased variance (and sum, when given) against two-pass float64:
 * mean and sum float64-grade (1e-12 of the values' magnitude), the variance within `varianceBar` of
 * itself (relative); non-finite data must give torch's mean sum / n and NaN.
 */
export function checkStats(
  checks: Checks, g: Geometry, x: ArrayLike<number>, ch: number, got: { mean: number; variance: number; sum?: number }, varianceBar: number,
): void {
  const values = channel(g, x, ch);
  const ref = stats64(values);
  const hasSum = got.sum !== undefined;
  if (!Number.isFinite(ref.sum)) {
    checks.close(`mean[${ch}]`, got.mean, ref.sum / values.length, 0);
    if (!Number.isNaN(got.variance)) checks.fail(`variance[${ch}] = ${got.variance}, expected NaN`);
    if (hasSum) checks.close(`total[${ch}]`, got.sum!, ref.sum, 0);
    return;
  }
  let maxAbs = 0, sumAbs = 0;
  for (const u of values) [maxAbs, sumAbs] = [Math.max(maxAbs, Math.abs(u)), sumAbs + Math.abs(u)];
  checks.close(`mean[${ch}]`, got.mean, ref.mean, 1e-12 * maxAbs);
  if (hasSum) checks.close(`total[${ch}]`, got.sum!, ref.sum, 1e-12 * sumAbs);
  checks.close(`variance[${ch}]`, got.variance, ref.variance, varianceBar * ref.variance);
}

/** Float64 y = (x - mean) / sqrt(variance + eps) * w + b over channel ch, in channel order. */
export function normalized(g: Geometry, x: ArrayLike<number>, ch: number, mean: number, variance: number, eps: number, w = 1, b = 0): Float64Array {
  const r = 1 / Math.sqrt(variance + eps);
  return Float64Array.from({ length: count(g) }, (_, j) => (x[at(g, ch, j)] - mean) * r * w + b);
}

/**
 * The builder shared by the family testers (XNNPACK's MicrokernelTester shape): a geometry, a channel
 * range, per-channel data kinds and a seed, in place, affine parameters and eps; `test` runs one call
 * on one build and returns its failures.
 */
export abstract class KernelTester {
  protected g: Geometry = { layout: "channels-first", n: 2, c: 3, s: 5 };
  private c0 = 0;
  private c1 = -1;
  protected kindList: Kind[] = ["normal"];
  protected seedValue = 1;
  protected misalignX = 0;
  protected inPlace = false;
  protected withAffine = true;
  protected epsValue = 1e-5;

  channelsFirst(n: number, c: number, s: number): this {
    this.g = { layout: "channels-first", n, c, s };
    return this;
  }

  channelsLast(rows: number, c: number): this {
    this.g = { layout: "channels-last", n: rows, c, s: 1 };
    return this;
  }

  /** Channels [c0, c1); all by default. */
  channels(c0: number, c1: number): this {
    [this.c0, this.c1] = [c0, c1];
    return this;
  }

  kinds(...k: Kind[]): this {
    this.kindList = k;
    return this;
  }

  seed(v: number): this {
    this.seedValue = v;
    return this;
  }

  /** Shifts the first tensor operand this many floats off its 64-byte alignment. */
  misalign(floats: number): this {
    this.misalignX = floats;
    return this;
  }

  /** The output is the (last) tensor input: y = x, dx = dy. */
  inplace(v: boolean): this {
    this.inPlace = v;
    return this;
  }

  /** Weight and bias arrays, or none (pointers 0: weight 1, bias 0). */
  affine(v: boolean): this {
    this.withAffine = v;
    return this;
  }

  eps(v: number): this {
    this.epsValue = v;
    return this;
  }

  protected get range(): [number, number] {
    return [this.c0, this.c1 < 0 ? this.g.c : this.c1];
  }

  protected inRange(ch: number): boolean {
    const [c0, c1] = this.range;
    return ch >= c0 && ch < c1;
  }

  /**
   * Fails each channel of the range whose coefficient block (`block`, as read back) does not take
   * the form its kind calls for (see mustScale), so a case exercises the form it claims to.
   */
  protected checkForms(checks: Checks, block: ArrayLike<number>, variance: ArrayLike<number>): void {
    const [c0, c1] = this.range;
    const row = coefRow("S") * coefStride(this.g.c);
    for (let ch = c0; ch < c1; ch++) {
      const kind = this.kindList[ch % this.kindList.length];
      const scaled = block[row + ch] !== 1, want = mustScale(kind, this.epsValue, variance[ch]);
      if (scaled !== want) checks.fail(`channel ${ch} (${kind}) scaled=${scaled}, expected ${want}`);
    }
  }

  /** The case, for failure messages. */
  protected label(extra: string): string {
    const g = this.g;
    return `${g.layout} n=${g.n} c=${g.c} s=${g.s} ${range(...this.range)} kinds=${this.kindList} seed=${this.seedValue} ${extra}`;
  }

  abstract test(k: Loaded): Promise<string[]>;
}

/** Runs testers in turn on one build; all their failures. */
export async function runAll(k: Loaded, testers: KernelTester[]): Promise<string[]> {
  const failures: string[] = [];
  for (const t of testers) failures.push(...(await t.test(k)));
  return failures;
}

/** Channels of the mixed channels-last case: scaled ones among normal ones, in and out of each range. */
const MIXED: Kind[] = ["normal", "huge", "offset", "tiny", "normal", "wide"];

/**
 * The cases of an elementwise kernel pair (normalize, dx) on one build: channels-first spatial sizes
 * in every tail class of the row loops `rowSteps`, channels-last channel counts in every tail class
 * of `lanes`, few rows, channel sub-ranges and unaligned operands, each geometry expanded by
 * `variants` (e.g. a normal and a scaled tester); and scaled channels mixed with normal ones in
 * channels-last (eps = 0), expanded by `mixed`.
 */
export function elementwiseSuite<T extends KernelTester>(
  build: (typeof BUILDS)[number],
  o: { rowSteps: number[]; lanes: number[]; make: () => T; variants: (make: () => T, i: number) => T[]; mixed: (make: () => T) => T[] },
): void {
  const run = async (cases: T[]) => expect(await runAll(await load(build), cases)).toEqual([]);
  describe("channels-first", () => {
    for (const [name, sizes] of sizeCases(o.rowSteps)) {
      it(`spatial ${name}`, () => run(sizes.flatMap((s) => o.variants(() => o.make().channelsFirst(2, 3, s), s))));
    }
    it("channel sub-ranges leave the other channels untouched", () => {
      const s = o.rowSteps[0] + o.rowSteps[1] + 1;
      return run(subRanges(7).flatMap(([c0, c1], i) => o.variants(() => o.make().channelsFirst(2, 7, s).channels(c0, c1), i)));
    });
    it("unaligned operands", () => run([1, 2, 3].flatMap((m) => o.variants(() => o.make().channelsFirst(2, 3, 2 * o.rowSteps[0] + 5).misalign(m), m))));
  });
  describe("channels-last", () => {
    for (const [name, sizes] of sizeCases(o.lanes)) {
      it(`channels ${name}`, () => run(sizes.flatMap((c) => o.variants(() => o.make().channelsLast(5, c), c))));
    }
    it("rows 1 to 3", () => run([1, 2, 3].flatMap((rows) => o.variants(() => o.make().channelsLast(rows, 6), rows))));
    it("channel sub-ranges leave the other channels untouched", () =>
      run(subRanges(11).flatMap(([c0, c1], i) => o.variants(() => o.make().channelsLast(7, 11).channels(c0, c1), i))));
    it("scaled channels mixed with normal ones, in and out of the range", () =>
      run([[0, 9], [2, 3], [1, 8], [4, 9], [3, 4]].flatMap(([c0, c1], i) =>
        o.mixed(() => o.make().channelsLast(6, 9).channels(c0, c1).kinds(...MIXED).eps(0).inplace(i % 2 === 0).seed(i)),
      )));
  });
}
