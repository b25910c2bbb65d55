// The kernel testers' own machinery: the guarded arena sees every stray byte (before, inside and
// after a buffer), and the tail classes are XNNPACK's.
import { describe, expect, it } from "vitest";
import { BUILDS, load, sizeCases, withArena } from "./harness.js";

describe("kernel test harness", () => {
  it("the arena reports writes outside the writable elements and the guards, and nothing else", async () => {
    const k = await load(BUILDS[0]);
    await withArena(k, (a) => {
      const buf = a.f32("out", 6, [1, 2, 3, 4, 5, 6], (i) => i >= 2 && i < 4, 1);
      const f64 = a.f64("sums", 3);
      a.seal();
      const bytes = new Uint8Array(k.memory.buffer);
      a.view(buf)[2] = 9; // writable
      a.view(buf)[3] = 9;
      expect(a.stray()).toEqual([]);
      a.view(buf)[4] = 9;
      bytes[buf.ptr - 1] ^= 1;
      bytes[buf.ptr + 6 * 4 + 5] ^= 1;
      bytes[f64.ptr + 8 + 7] ^= 1; // one byte of an f64
      expect(a.stray()).toEqual([
        "out: guard byte -1 before the start written",
        "out[4] written outside its writable range",
        "out: guard byte 5 past the end written",
        "sums[1] written outside its writable range",
      ]);
    });
  });

  it("tail classes: eq, div, lt and gt of each step", () => {
    expect(sizeCases([4, 1])).toEqual([["eq_4", [4]], ["div_4", [8, 12]], ["lt_4", [1, 2, 3]], ["gt_4", [5, 6, 7]]]);
    expect(sizeCases([1])).toEqual([["eq_1", [1]], ["gt_1", [2, 3]]]);
  });
});
