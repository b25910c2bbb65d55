// The package as a user installs it, into a fresh project under the OS temp folder, from npm's
// cache where it can (after `npm ci` nothing is fetched; see run.ts):
// - from the tarball `npm pack` makes, packed from a copy of this working tree so that npm's
//   prepack/postpack scripts run in full without rebuilding the dist/ other tests are reading;
// - from a git URL: git+file:// of a clone of HEAD, which npm builds with the package's prepare script.
import { execFile } from "node:child_process";
import { cp, mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { init } from "../../dist/index.js";
import { smokeCheck } from "../browser/pages/smoke-check.js";
import { npm, smokeInNode } from "./run.js";

const repo = resolve(import.meta.dirname, "../..");
const git = (args: string[], cwd = repo) => promisify(execFile)("git", args, { cwd, timeout: 60_000 });

/** What users need and nothing else: the built modules with their types, and the documents. */
async function expectedFiles(): Promise<string[]> {
  const modules = (await readdir(join(repo, "src"))).filter((f) => /\.(ts|js)$/.test(f)).map((f) => f.replace(/\.(ts|js)$/, ""));
  return [
    "CHANGELOG.md", "LICENSE", "README.md", "package.json",
    ...modules.flatMap((m) => [`dist/${m}.d.ts`, `dist/${m}.js`]),
  ].sort();
}

/** Every file under `dir`, relative to it, sorted. */
async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name).slice(dir.length + 1)).sort();
}

/** A new project, as `npm init` makes one: the package is installed into it by the test. */
async function newProject(dir: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, "package.json"), `${JSON.stringify({ name: "app", version: "1.0.0", private: true }, null, 2)}\n`);
  return dir;
}

describe("installing the package", () => {
  let work: string;
  /** The working tree, copied: tracked files and untracked ones .gitignore does not cover. */
  let tree: string;
  let tarball: string;
  /** The tarball, extracted. */
  let unpacked: string;
  let packedFiles: string[];
  /** Node's results for the smoke check with this repository's dist/: every install must match. */
  let expected: unknown;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "wasm-batchnorm-install-"));
    tree = join(work, "tree");
    const { stdout } = await git(["ls-files", "-z", "--cached", "--others", "--exclude-standard"]);
    const files = stdout.split("\0").filter(Boolean);
    await Promise.all(files.map((f) => cp(join(repo, f), join(tree, f), { force: true }).catch((e) => {
      // a tracked file deleted in the working tree is not part of it
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    })));
    await symlink(join(repo, "node_modules"), join(tree, "node_modules"), "dir");
    // npm pack prints the tarball's name last (after the output of the scripts it ran)
    const { stdout: packed } = await npm(["pack", "--pack-destination", work], tree);
    tarball = join(work, packed.trim().split("\n").at(-1)!);
    unpacked = join(work, "unpacked");
    await mkdir(unpacked);
    await promisify(execFile)("tar", ["-xzf", tarball, "-C", unpacked, "--strip-components=1"]);
    packedFiles = await listFiles(unpacked);
    expected = await smokeCheck(init);
  }, 120_000);

  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("npm pack packs dist/*.js and *.d.ts of every module, README, LICENSE, CHANGELOG: nothing else", async () => {
    expect(packedFiles).toEqual(await expectedFiles());
  });

  it("the packed package.json has the registry's metadata and no install-time script", async () => {
    const pkg = JSON.parse(await readFile(join(unpacked, "package.json"), "utf8"));
    expect(pkg).toMatchObject({
      name: "wasm-batchnorm",
      license: "MIT",
      author: expect.any(String),
      repository: { type: "git", url: expect.stringMatching(/^git\+https:\/\/.+\.git$/) },
      homepage: expect.stringMatching(/^https:\/\//),
      bugs: { url: expect.stringMatching(/^https:\/\//) },
      keywords: expect.arrayContaining(["batchnorm", "webassembly"]),
    });
    // npm 11 lists a tarball's "prepare" as an install script to review (though it never runs it)
    expect(Object.keys(pkg.scripts)).not.toContain("prepare");
    expect(await readFile(join(unpacked, "LICENSE"), "utf8")).toMatch(/^MIT License\n\nCopyright \(c\) 2026 wasm-batchnorm contributors\n/);
    // no source maps: they would carry the sources, and the base64 wasm a second time
    for (const f of packedFiles.filter((f) => f.endsWith(".js"))) {
      expect(await readFile(join(unpacked, f), "utf8"), f).not.toMatch(/sourceMappingURL/);
    }
    // TensorFlow.js is an optional peer of the wasm-batchnorm/tfjs subpath only: no dependency, and no module imports it
    expect(pkg.dependencies).toBeUndefined();
    expect(pkg.exports["./tfjs"]).toEqual({ types: "./dist/tfjs.d.ts", default: "./dist/tfjs.js" });
    expect(pkg.peerDependenciesMeta).toEqual({ "@tensorflow/tfjs-core": { optional: true } });
    // (static imports at the start of a line, dynamic import() and require(); doc comments show tfjs imports)
    for (const f of packedFiles.filter((f) => f.endsWith(".js"))) {
      expect(await readFile(join(unpacked, f), "utf8"), f).not.toMatch(/^\s*(import|export)\b[^\n]*["']@tensorflow|\b(import|require)\s*\(\s*["']@tensorflow/m);
    }
    // postpack put the package.json back byte for byte
    expect(await readFile(join(tree, "package.json"), "utf8")).toBe(await readFile(join(repo, "package.json"), "utf8"));
  });

  it("installs from the tarball with no npm warning; import and require by name work", async () => {
    const app = await newProject(join(work, "app-tarball"));
    const { stdout, stderr } = await npm(["install", tarball], app);
    expect(`${stdout}${stderr}`).not.toMatch(/warn|error/i);
    expect(await listFiles(join(app, "node_modules/wasm-batchnorm"))).toEqual(packedFiles);
    expect(await smokeInNode("wasm-batchnorm", "module", app)).toEqual(expected);
    expect(await smokeInNode("wasm-batchnorm", "commonjs", app)).toEqual(expected);
  }, 60_000);

  it("wasm-batchnorm/tfjs: loads without TensorFlow.js, and with tfjs-core and its cpu backend installed computes NCHW statistics per channel", async () => {
    const app = await newProject(join(work, "app-tfjs"));
    await npm(["install", tarball], app);
    const probe = (inputType: "module" | "commonjs") =>
      promisify(execFile)(process.execPath, [`--input-type=${inputType}`, "-e", inputType === "module"
        ? `import { registerTfjsKernels } from "wasm-batchnorm/tfjs"; console.log(typeof registerTfjsKernels);`
        : `console.log(typeof require("wasm-batchnorm/tfjs").registerTfjsKernels);`], { cwd: app });
    expect((await probe("module")).stdout.trim()).toBe("function");
    expect((await probe("commonjs")).stdout.trim()).toBe("function");
    const { stdout, stderr } = await npm(["install", "@tensorflow/tfjs-core@4.22.0", "@tensorflow/tfjs-backend-cpu@4.22.0"], app);
    expect(`${stdout}${stderr}`).not.toMatch(/warn|error/i);
    // x [1, 2, 1, 2] (NCHW), statistics [1, 2, 1, 1]: channel 0 is {1, 3}, channel 1 is {5, 9}
    const script = `
      import * as tf from "@tensorflow/tfjs-core";
      import "@tensorflow/tfjs-backend-cpu";
      import { registerTfjsKernels } from "wasm-batchnorm/tfjs";
      await tf.setBackend("cpu");
      const plugin = await registerTfjsKernels(tf);
      const y = tf.batchNorm(tf.tensor4d([1, 3, 5, 9], [1, 2, 1, 2]), tf.tensor4d([2, 7], [1, 2, 1, 1]), tf.tensor4d([1, 4], [1, 2, 1, 1]), undefined, undefined, 1e-3);
      console.log(JSON.stringify({ backends: plugin.backends, y: Array.from(y.dataSync(), (v) => Math.round(v * 1e4) / 1e4) }));`;
    const run = await promisify(execFile)(process.execPath, ["--input-type=module", "-e", script], { cwd: app, timeout: 20_000 });
    expect(JSON.parse(run.stdout.trim().split("\n").at(-1)!)).toEqual({ backends: ["cpu"], y: [-0.9995, 0.9995, -0.9999, 0.9999] });
  }, 120_000);

  it("installs from a git URL (a clone of HEAD), built by its prepare script", async () => {
    const clone = join(work, "clone");
    await git(["clone", "--quiet", repo, clone]);
    const app = await newProject(join(work, "app-git"));
    const { stdout, stderr } = await npm(["install", `git+file://${clone}`], app, 240_000);
    // the one warning: npm lists the prepare script it ran (a git install does run it)
    const warnings = `${stdout}${stderr}`.split("\n").filter((l) => /warn|error/i.test(l));
    expect(warnings.filter((l) => !l.startsWith("npm warn install-scripts"))).toEqual([]);
    const installed = join(app, "node_modules/wasm-batchnorm");
    expect(await listFiles(installed)).toEqual(packedFiles);
    expect(await smokeInNode("wasm-batchnorm", "module", app)).toEqual(expected);
    expect(await smokeInNode("wasm-batchnorm", "commonjs", app)).toEqual(expected);
  }, 300_000);
});
