// PyTorch's reference cases (test/golden) run in Chromium on both backends. Each result must meet
// the accuracy bar against torch's float64 answer and be bit-identical to Node's for the same
// backend: wasm arithmetic is deterministic, so any difference is a bug in loading or marshalling.
import { readdirSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { init } from "../../dist/index.js";
import { maxAbs, maxAbsDiff } from "../reference.js";
import { describeWithBrowser, launchChromium, openPage } from "./chromium.js";
import { runCase, type GoldenCase } from "./pages/golden-case.js";
import { startServer, type StaticServer } from "./server.mjs";

const repo = resolve(import.meta.dirname, "../..");
const goldenDir = resolve(repo, "test/golden");
/** Every functional-API case; sequences (module state) and error cases are tested in Node only. */
const cases: GoldenCase[] = readdirSync(goldenDir)
  .filter((f) => f.endsWith(".json"))
  .map((f) => JSON.parse(readFileSync(resolve(goldenDir, f), "utf8")))
  .filter((c) => ["forward_train", "forward_eval", "backward"].includes(c.op));
const backends = ["simd", "scalar"] as const;
/** torch-only quantities: the API returns invstd rather than the variance, and has no counter. */
const notReturned = new Set(["batch_var_biased", "num_batches_tracked"]);

type Results = Record<string, Record<string, number[]>>;
const bits = (a: number[]) => Array.from(new Uint32Array(Float32Array.from(a).buffer));

describeWithBrowser("PyTorch reference cases in Chromium", () => {
  let browser: Browser;
  let server: StaticServer;
  const inBrowser = {} as Record<(typeof backends)[number], Results>;
  const inNode = {} as Record<(typeof backends)[number], Results>;

  beforeAll(async () => {
    [browser, server] = await Promise.all([
      launchChromium(),
      startServer({ root: repo, allow: ["/dist/", "/test/golden/", "/test/browser/pages/"] }),
    ]);
    const { page, problems } = await openPage(browser, `${server.url}/test/browser/pages/golden.html`);
    const names = cases.map((c) => c.name);
    for (const backend of backends) {
      inBrowser[backend] = await page.evaluate(
        ([names, backend]) => (window as unknown as { runGolden(n: string[], b: string): Promise<Results> }).runGolden(names, backend),
        [names, backend] as const,
      );
      const bn = await init({ backend });
      inNode[backend] = Object.fromEntries(cases.map((c) => [c.name, runCase(bn, c)]));
    }
    expect(problems).toEqual([]);
  }, 30_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  describe.each(backends)("%s", (backend) => {
    it.each(cases.map((c) => [c.name, c] as const))("%s", (_, c) => {
      const ours = inBrowser[backend][c.name];
      for (const [q, expected] of Object.entries(c.expected_f64)) {
        if (notReturned.has(q)) continue;
        expect(ours[q], `${q} missing`).toBeDefined();
        expect(bits(ours[q]), `${q}: browser vs Node bits`).toEqual(bits(inNode[backend][c.name][q]));
        const f64 = (expected as (number | string)[]).map(Number);
        const bar = Math.max(2 * Number(c.torch_f32_max_abs_err[q]), 8 * 2 ** -23 * maxAbs(f64));
        expect(maxAbsDiff(ours[q], f64), `${q}: max |ours - float64|`).toBeLessThanOrEqual(bar);
      }
    });
  });
});
