// The built package in a real browser: loaded by URL with no bundler, installed from its tarball and
// bundled by Vite, under a strict CSP, with and without WebAssembly SIMD. The wasm is embedded in the
// JavaScript, so none of this needs server or bundler configuration: the tests use none.
import { execFile } from "node:child_process";
import { cp, mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import type { Browser } from "playwright-core";
import { build } from "vite";
import { afterAll, beforeAll, expect, it } from "vitest";
import { init } from "../../dist/index.js";
import { describeWithBrowser, launchChromium, openPage } from "./chromium.js";
import { smokeCheck } from "./pages/smoke-check.js";
import { STRICT_CSP, startServer, type StaticServer } from "./server.mjs";

const repo = resolve(import.meta.dirname, "../..");
const run = promisify(execFile);
type Runs = Awaited<ReturnType<typeof smokeCheck>>;

describeWithBrowser("the built package in Chromium", () => {
  let browser: Browser;
  /** Node's results for the same check: the browser's must be bit-identical. */
  let node: Runs;
  /** Temporary folder for the tarball install and the Vite build. */
  let work: string;
  const servers: StaticServer[] = [];
  /** A new server with these response headers, by default of the repository's dist/ and test pages. */
  const serve = async (headers: Record<string, string> = {}, root = repo, allow = ["/dist/", "/test/browser/pages/"]) => {
    const server = await startServer({ root, allow, headers });
    servers.push(server);
    return server.url;
  };
  /** What the page published, and what went wrong on the way. */
  const smokePage = async (url: string, b = browser) => {
    const { page, problems } = await openPage(b, url);
    const runs = await page.evaluate(() => (window as unknown as { smoke: Runs }).smoke);
    await page.close();
    return { runs, problems };
  };

  beforeAll(async () => {
    browser = await launchChromium();
    node = await smokeCheck(init);
    work = await mkdtemp(join(tmpdir(), "wasm-batchnorm-app-"));
  }, 30_000);

  afterAll(async () => {
    await browser?.close();
    await Promise.all(servers.map((s) => s.close()));
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("loads /dist/index.js in a page with no bundler: SIMD by default, scalar on request, Node's bits", async () => {
    const { runs, problems } = await smokePage(`${await serve()}/test/browser/pages/smoke.html`);
    expect(problems).toEqual([]);
    expect(runs.default).toMatchObject({ backend: "simd" });
    expect(runs.scalar).toMatchObject({ backend: "scalar" });
    // toEqual compares numbers with Object.is: for float32 values that is bit equality
    expect(runs).toEqual(node);
  });

  it(`runs under Content-Security-Policy: ${STRICT_CSP}, with no violation`, async () => {
    const { runs, problems } = await smokePage(`${await serve({ "Content-Security-Policy": STRICT_CSP })}/test/browser/pages/smoke.html`);
    expect(problems).toEqual([]);
    expect(runs).toEqual(node);
  });

  it("fails visibly without 'wasm-unsafe-eval' (so the CSP test above can fail)", async () => {
    const url = await serve({ "Content-Security-Policy": "script-src 'self'" });
    const { runs, problems } = await smokePage(`${url}/test/browser/pages/smoke.html`);
    expect(runs.default).toMatchObject({ error: expect.stringMatching(/CompileError/) });
    expect(problems).toContainEqual(expect.stringMatching(/^console: CSP violation: script-src blocked wasm-eval/));
  });

  it("falls back to the scalar build in an engine without WebAssembly SIMD", async () => {
    // V8 supports wasm SIMD only with SSE4.1; without it, WebAssembly.validate rejects the SIMD build
    const noSimd = await launchChromium(["--js-flags=--no-enable-sse4-1"]);
    try {
      const { runs, problems } = await smokePage(`${await serve()}/test/browser/pages/smoke.html`, noSimd);
      expect(problems).toEqual([]);
      expect(runs.default).toEqual(node.scalar);
      expect(runs.simd).toMatchObject({ error: expect.stringMatching(/does not support WebAssembly SIMD/) });
    } finally {
      await noSimd.close();
    }
  }, 30_000);

  it("installs from the packed tarball, bundles with Vite by package name, runs under the strict CSP", async () => {
    // An app as npm would lay it out: app/ and node_modules/wasm-batchnorm/ (the tarball, so only
    // package.json "files"), resolved by plain node_modules lookup and package.json "exports".
    const pkg = join(work, "node_modules/wasm-batchnorm");
    await mkdir(pkg, { recursive: true });
    const packed = await run("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", work], { cwd: repo });
    const [{ filename }] = JSON.parse(packed.stdout) as { filename: string }[];
    await run("tar", ["-xzf", join(work, filename), "-C", pkg, "--strip-components=1"]);
    await cp(join(repo, "test/browser/pages/vite"), join(work, "app"), { recursive: true });
    await cp(join(repo, "test/browser/pages/smoke-check.js"), join(work, "smoke-check.js"));
    const out = join(work, "out");
    await build({ root: join(work, "app"), configFile: false, logLevel: "silent", build: { outDir: out } });

    const url = await serve({ "Content-Security-Policy": STRICT_CSP }, out, ["/"]);
    const { runs, problems } = await smokePage(`${url}/index.html`);
    expect(problems).toEqual([]);
    expect(runs.default).toMatchObject({ backend: "simd" });
    expect(runs).toEqual(node);
  }, 30_000);
});
