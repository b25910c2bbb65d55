// The demo as a user gets it: `node demo/serve.mjs` (so under its strict CSP), one run clicked
// through in Chromium. Saves test/artifacts/demo.png; with WASM_BN_DOCS_SCREENSHOT=1 also
// docs/demo.png, the screenshot the README shows (made on purpose, not on every run).
import { spawn, type ChildProcess } from "node:child_process";
import { copyFile, mkdir } from "node:fs/promises";
import { resolve } from "node:path";
import { createInterface } from "node:readline";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeWithBrowser, launchChromium, openPage } from "./chromium.js";

const repo = resolve(import.meta.dirname, "../..");

/** Starts the demo server on a free port and returns its child process and the URL it printed. */
async function startDemo(): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, ["demo/serve.mjs"], { cwd: repo, env: { ...process.env, PORT: "0" } });
  const lines = createInterface({ input: child.stdout! });
  for await (const line of lines) {
    const url = line.match(/(http:\/\/127\.0\.0\.1:\d+\/demo\/)/)?.[1];
    if (url) return { child, url };
  }
  throw new Error("demo/serve.mjs exited without printing its URL");
}

describeWithBrowser("the demo page", () => {
  let browser: Browser;
  let demo: { child: ChildProcess; url: string } | undefined;

  beforeAll(async () => {
    [browser, demo] = await Promise.all([launchChromium(), startDemo()]);
  }, 30_000);

  afterAll(async () => {
    await browser?.close();
    demo?.child.kill();
  });

  it("runs a workload, shows timings that agree with the JS loop, and re-renders on the sliders", async () => {
    const { page, problems } = await openPage(browser, demo!.url, { width: 1100, height: 900 });
    expect(await page.textContent("#backend")).toMatch(/^simd/);

    await page.check("input[value=channels-last]");
    await page.click("#run");
    await page.waitForSelector("#app:is([data-state=done], [data-state=error])", { timeout: 30_000 });
    expect(await page.textContent("#status"), problems.join("\n")).toMatch(/^Done: training forward, channels-last/);

    const bars = await page.locator("#chart .bar-value").allTextContents();
    expect(bars).toHaveLength(3);
    for (const bar of bars) expect(bar).toMatch(/^\d+(\.\d+)? ms/);
    expect(bars[0]).toMatch(/× the JS loop$/);
    expect(await page.getAttribute("#agreement", "data-agree")).toBe("true");
    expect(await page.textContent("#agreement")).toMatch(/simd: max \|Δ\| [\d.]+e[-+]\d+ · scalar: max \|Δ\| [\d.]+e[-+]\d+ ✓ agree/);
    // normalized channel 0: mean 0 and variance 1 to the printed digits
    expect(await page.textContent("#after-stats")).toBe("mean 0.000 · variance 1.000");

    await page.fill("#gamma", "2");
    await page.fill("#beta", "1");
    expect(await page.textContent("#after-stats")).toBe("mean 1.000 · variance 4.000");
    await page.fill("#gamma", "1");
    await page.fill("#beta", "0");
    expect(problems).toEqual([]);

    await mkdir(resolve(repo, "test/artifacts"), { recursive: true });
    const shot = resolve(repo, "test/artifacts/demo.png");
    await page.screenshot({ path: shot, fullPage: true });
    if (process.env.WASM_BN_DOCS_SCREENSHOT === "1") {
      await mkdir(resolve(repo, "docs"), { recursive: true });
      await copyFile(shot, resolve(repo, "docs/demo.png"));
    }
  }, 45_000);
});
