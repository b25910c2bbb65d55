// The demo as a user gets it: `node demo/serve.mjs` (so under its strict CSP), one run clicked
// through in Chromium at a phone's width (390 px) and a desktop's (1280 px). Saves screenshots to
// test/artifacts/ (demo-<width>-empty.png before the run, demo-<width>.png after it,
// demo-<width>-shifted.png with the sliders at their ends); with WASM_BN_DOCS_SCREENSHOT=1 also
// docs/demo.png, the 1280 px one the README shows (made on purpose, not on every run). The Train
// panel: a short training run at each width, saved as demo-train-<width>.png (and docs/demo-train.png).
import { spawn, type ChildProcess } from "node:child_process";
import { copyFile, mkdir } from "node:fs/promises";
import { resolve } from "node:path";
import { createInterface } from "node:readline";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeWithBrowser, launchChromium, openPage } from "./chromium.js";

const repo = resolve(import.meta.dirname, "../..");
const artifacts = resolve(repo, "test/artifacts");
/** The smallest text the demo may show, in CSS pixels (at 390 px its bar labels once rendered at 7). */
const MIN_TEXT_PX = 11;
/** The first workload, 32×64×32×32: channel 0 holds N·H·W values. */
const CHANNEL_VALUES = 32 * 32 * 32;

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

/** Each visible text of the charts with the size it renders at (SVG text scaled by its viewBox). */
function chartTexts(page: Page) {
  return page.$$eval("#chart :is(p, .bar-label, .bar-note, .bar-value), .histogram text", (els) =>
    els
      .filter((e) => e.textContent!.trim() !== "")
      .map((e) => {
        const ctm = e instanceof SVGGraphicsElement ? e.getScreenCTM() : null;
        const scale = ctm ? Math.hypot(ctm.a, ctm.b) : 1;
        return { text: e.textContent!, px: parseFloat(getComputedStyle(e).fontSize) * scale };
      }),
  );
}

/** Whether anything sticks out: the page scrolls sideways, or a chart's text leaves its box. */
function overflow(page: Page) {
  return page.evaluate(() => {
    const out: string[] = [];
    if (document.documentElement.scrollWidth > window.innerWidth) out.push(`page is ${document.documentElement.scrollWidth} px wide`);
    for (const box of document.querySelectorAll<HTMLElement>("#chart, .histogram")) {
      const b = box.getBoundingClientRect();
      for (const t of box.querySelectorAll(".bar-row, text")) {
        const r = t.getBoundingClientRect();
        if (r.left < b.left - 0.5 || r.right > b.right + 0.5) out.push(`"${t.textContent}" leaves #${box.id}`);
      }
    }
    return out;
  });
}

/** What each histogram reports: values in its bins and values given (charts.js). */
async function histogramCounts(page: Page) {
  const counts = async (id: string) => ({
    plotted: Number(await page.getAttribute(`#${id}`, "data-plotted")),
    total: Number(await page.getAttribute(`#${id}`, "data-total")),
  });
  return { before: await counts("before"), after: await counts("after") };
}

describeWithBrowser("the demo page", () => {
  let browser: Browser;
  let demo: { child: ChildProcess; url: string } | undefined;

  beforeAll(async () => {
    [browser, demo] = await Promise.all([launchChromium(), startDemo()]);
    await mkdir(artifacts, { recursive: true });
  }, 30_000);

  afterAll(async () => {
    await browser?.close();
    demo?.child.kill();
  });

  it.each([390, 1280])("at %i px: readable before and after a run, timings agree, sliders re-render, no value cut off", async (width) => {
    const { page, problems } = await openPage(browser, demo!.url, { width, height: 900 });
    expect(await page.textContent("#backend")).toMatch(/^simd/);

    // before the first run every chart says what it will show
    expect(await page.textContent("#chart .placeholder")).toMatch(/Press Run/);
    for (const id of ["before", "after"]) expect(await page.textContent(`#${id} text.placeholder`)).toMatch(/Press Run/);
    for (const t of await chartTexts(page)) expect(t.px, t.text).toBeGreaterThanOrEqual(MIN_TEXT_PX);
    await page.screenshot({ path: resolve(artifacts, `demo-${width}-empty.png`), fullPage: true });

    await page.check("input[value=channels-last]");
    await page.click("#run");
    await page.waitForSelector("#app:is([data-state=done], [data-state=error])", { timeout: 30_000 });
    expect(await page.textContent("#status"), problems.join("\n")).toMatch(/^Done: training forward, channels-last/);

    const values = await page.locator("#chart .bar-value").allTextContents();
    expect(values).toHaveLength(3);
    for (const value of values) expect(value).toMatch(/^\d+(\.\d+)? ms$/);
    expect(await page.locator("#chart .bar-note").allTextContents()).toEqual([
      expect.stringMatching(/^[\d.]+× the JS loop$/),
      expect.stringMatching(/^[\d.]+× the JS loop$/),
      "baseline",
    ]);
    expect(await page.getAttribute("#agreement", "data-agree")).toBe("true");
    expect(await page.textContent("#agreement")).toMatch(/simd: max \|Δ\| [\d.]+e[-+]\d+ · scalar: max \|Δ\| [\d.]+e[-+]\d+ ✓ agree/);
    // normalized channel 0: mean 0 and variance 1 to the printed digits
    expect(await page.textContent("#after-stats")).toBe("mean 0.000 · variance 1.000");

    const texts = await chartTexts(page);
    expect(texts.length).toBeGreaterThan(9); // 3 bars × label, note, value, and tick labels
    for (const t of texts) expect(t.px, t.text).toBeGreaterThanOrEqual(MIN_TEXT_PX);
    expect(await overflow(page)).toEqual([]);
    expect(await histogramCounts(page)).toEqual({
      before: { plotted: CHANNEL_VALUES, total: CHANNEL_VALUES },
      after: { plotted: CHANNEL_VALUES, total: CHANNEL_VALUES },
    });
    await page.screenshot({ path: resolve(artifacts, `demo-${width}.png`), fullPage: true });
    if (width === 1280 && process.env.WASM_BN_DOCS_SCREENSHOT === "1") {
      await copyFile(resolve(artifacts, `demo-${width}.png`), resolve(repo, "docs/demo.png"));
    }

    await page.fill("#gamma", "2");
    await page.fill("#beta", "1");
    expect(await page.textContent("#after-stats")).toBe("mean 1.000 · variance 4.000");
    // the sliders' ends: the x axis follows the data, so no tail is cut off
    for (const [gamma, beta] of [["2.5", "3"], ["2.5", "-3"], ["0.25", "3"]]) {
      await page.fill("#gamma", gamma);
      await page.fill("#beta", beta);
      expect(await histogramCounts(page), `γ ${gamma}, β ${beta}`).toEqual({
        before: { plotted: CHANNEL_VALUES, total: CHANNEL_VALUES },
        after: { plotted: CHANNEL_VALUES, total: CHANNEL_VALUES },
      });
      expect(await overflow(page), `γ ${gamma}, β ${beta}`).toEqual([]);
    }
    await page.fill("#gamma", "2.5");
    await page.fill("#beta", "3");
    await page.screenshot({ path: resolve(artifacts, `demo-${width}-shifted.png`), fullPage: true });
    expect(problems).toEqual([]);
    await page.close();
  }, 60_000);

  it.each([390, 1280])("Train panel at %i px: both networks train in workers, the curves and the verdict show BN learning where the plain network guesses", async (width) => {
    const { page, problems } = await openPage(browser, demo!.url, { width, height: 900 });
    expect(await page.textContent("#train-chart .placeholder")).toMatch(/Press Train/);
    await page.selectOption("#lr", "8");
    await page.selectOption("#steps", "300");
    await page.click("#train");
    await page.waitForSelector("#train-panel:is([data-state=done], [data-state=error])", { timeout: 60_000 });
    expect(await page.textContent("#train-status"), problems.join("\n")).toBe("Done: 300 steps at learning rate 8.");

    // the same training code and seeds as test/mnist-training.test.ts: BN trains, the plain network stays near chance
    const verdict = (await page.textContent("#train-result"))!;
    const [, withBn, without] = verdict.match(/with BN reads (\d+)% .* without BN reads (\d+)%/)!.map(Number);
    expect(withBn).toBeGreaterThan(75);
    expect(without).toBeLessThan(20);
    expect(verdict).toMatch(/With BN it got to 80% after \d+ steps; without BN it never got to 80%\./);

    // one curve per network, a point for every evaluation (every 25 steps and step 0)
    const curves = await page.$$eval("#train-chart path", (paths) => paths.map((p) => (p.getAttribute("d")!.match(/[ML]/g) ?? []).length));
    expect(curves).toEqual([13, 13]);
    const texts = await page.$$eval("#train-chart text", (els) =>
      els.map((e) => {
        const ctm = (e as SVGGraphicsElement).getScreenCTM()!;
        const box = e.getBoundingClientRect();
        const chart = document.getElementById("train-chart")!.getBoundingClientRect();
        return { text: e.textContent!, px: parseFloat(getComputedStyle(e).fontSize) * Math.hypot(ctm.a, ctm.b), inside: box.left >= chart.left - 0.5 && box.right <= chart.right + 0.5 };
      }),
    );
    expect(texts.length).toBeGreaterThan(10);
    for (const t of texts) {
      expect(t.px, t.text).toBeGreaterThanOrEqual(MIN_TEXT_PX);
      expect(t.inside, t.text).toBe(true);
    }
    expect(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)).toBe(true);
    await page.locator("#train-panel").screenshot({ path: resolve(artifacts, `demo-train-${width}.png`) });
    if (width === 1280 && process.env.WASM_BN_DOCS_SCREENSHOT === "1") {
      await copyFile(resolve(artifacts, `demo-train-${width}.png`), resolve(repo, "docs/demo-train.png"));
    }
    expect(problems).toEqual([]);
    await page.close();
  }, 90_000);
});
