// The system Chromium for the browser tests: where it is, whether the tests run, skip or fail
// without it, how it is launched, and how a page is opened with its errors recorded.
import { existsSync } from "node:fs";
import { chromium, type Browser, type Page } from "playwright-core";
import { describe, it } from "vitest";

const executablePath = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const found = existsSync(executablePath);

/**
 * describe() for suites that need Chromium. Without one they are skipped with a message, unless
 * WASM_BN_REQUIRE_BROWSER=1 (CI installs Chromium, so there a missing browser is a broken setup).
 */
export function describeWithBrowser(name: string, body: () => void): void {
  if (found) {
    describe(name, body);
    return;
  }
  const why = `no Chromium at ${executablePath} (set CHROMIUM_PATH to use another)`;
  if (process.env.WASM_BN_REQUIRE_BROWSER === "1") {
    describe(name, () => {
      it("needs Chromium", () => {
        throw new Error(`WASM_BN_REQUIRE_BROWSER=1 but ${why}`);
      });
    });
  } else {
    console.warn(`SKIPPED browser tests "${name}": ${why}`);
    describe.skip(name, body);
  }
}

/** `extraArgs` e.g. V8 flags for one test; never downloads a browser (playwright-core has none). */
export function launchChromium(extraArgs: string[] = []): Promise<Browser> {
  return chromium.launch({
    executablePath,
    headless: true,
    timeout: 20_000,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      "--disable-quic",
      ...extraArgs,
    ],
  });
}

export interface OpenedPage {
  page: Page;
  /** Console errors, uncaught exceptions and CSP violations, in order. */
  problems: string[];
}

/**
 * Opens `url` in a fresh page and waits until its script marks `<html data-done>` (our pages do,
 * after their module ran). Playwright's init scripts run before the page's own and are exempt from
 * its CSP, so the violation listener below is in place before anything could be blocked.
 */
export async function openPage(browser: Browser, url: string, viewport = { width: 1280, height: 720 }): Promise<OpenedPage> {
  const page = await browser.newPage({ viewport });
  page.setDefaultTimeout(15_000);
  const problems: string[] = [];
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`uncaught: ${e.message}`));
  await page.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) => {
      console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || "inline"}`);
    });
  });
  const response = await page.goto(url);
  if (!response?.ok()) throw new Error(`${url}: HTTP ${response?.status()}`);
  await page.waitForSelector("html[data-done]", { state: "attached" });
  return { page, problems };
}
