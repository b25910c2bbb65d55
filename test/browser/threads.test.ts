// Threads in Chromium: a page served with COOP/COEP (cross-origin isolated) under the strict CSP
// gets 2 threads, its worker loaded as a module worker from dist/; a page without those headers falls
// back to 1 thread and says so once in the console. Either way the async API's results equal Node's:
// bit for bit where the split is by channel (and on 1 thread), within the accuracy bar where rows
// are split and merged.
import { resolve } from "node:path";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, expect, it } from "vitest";
import { init } from "../../dist/index.js";
import { maxAbs, maxAbsDiff } from "../reference.js";
import { describeWithBrowser, launchChromium, openPage } from "./chromium.js";
import { THREAD_CASES, runThreadCase } from "./pages/threads-case.js";
import { STRICT_CSP, startServer, type StaticServer } from "./server.mjs";

const repo = resolve(import.meta.dirname, "../..");
const ISOLATION = { "Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp" };
type Run = { threads: number; isolated: boolean; results: Record<string, Record<string, number[]>> };
const bits = (a: number[]) => Array.from(new Uint32Array(Float32Array.from(a).buffer));

describeWithBrowser("threads in Chromium", () => {
  let browser: Browser;
  const servers: StaticServer[] = [];
  let reference: Record<string, Record<string, number[]>>;

  const run = async (headers: Record<string, string>, threads: number): Promise<Run & { problems: string[]; warnings: string[] }> => {
    const server = await startServer({ root: repo, allow: ["/dist/", "/test/browser/pages/"], headers: { "Content-Security-Policy": STRICT_CSP, ...headers } });
    servers.push(server);
    const { page, problems } = await openPage(browser, `${server.url}/test/browser/pages/threads.html`);
    const warnings: string[] = [];
    page.on("console", (m) => {
      if (m.type() === "warning") warnings.push(m.text());
    });
    const out = await page.evaluate((t) => (window as unknown as { runThreads(t: number): Promise<Run> }).runThreads(t), threads);
    await page.close();
    return { ...out, problems, warnings };
  };

  beforeAll(async () => {
    browser = await launchChromium();
    const bn = await init({ backend: "simd", threads: 1 });
    reference = {};
    for (const c of THREAD_CASES) reference[c.name] = await runThreadCase(bn, c);
  }, 30_000);

  afterAll(async () => {
    await browser?.close();
    await Promise.all(servers.map((s) => s.close()));
  });

  const compare = (results: Run["results"], exact: (name: string) => boolean) => {
    for (const c of THREAD_CASES) {
      for (const [q, ref] of Object.entries(reference[c.name])) {
        const ours = results[c.name][q];
        if (exact(c.name)) expect(bits(ours), `${c.name} ${q}: bits`).toEqual(bits(ref));
        else expect(maxAbsDiff(ours, ref), `${c.name} ${q}`).toBeLessThanOrEqual(16 * 2 ** -23 * maxAbs(ref));
      }
    }
  };

  it("a cross-origin-isolated page runs 2 threads; channel splits equal Node's 1-thread bits, row splits meet the bar", async () => {
    const r = await run(ISOLATION, 2);
    expect(r.problems).toEqual([]);
    expect(r.isolated).toBe(true);
    expect(r.threads).toBe(2);
    compare(r.results, (name) => name.includes("channel split"));
  }, 60_000);

  it("a page without COOP/COEP falls back to 1 thread, warns once, and gives Node's 1-thread bits", async () => {
    const r = await run({}, 2);
    expect(r.problems).toEqual([]);
    expect(r.isolated).toBe(false);
    expect(r.threads).toBe(1);
    expect(r.warnings.filter((w) => w.includes("cross-origin isolated")).length).toBe(1);
    compare(r.results, () => true);
  }, 60_000);
});
