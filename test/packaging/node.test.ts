// The built package in plain Node, outside vitest's module loader: imported by its name (resolved
// through package.json "exports" by self-reference), and require()d as an ES module, which Node
// supports since 20.19 for modules without top-level await.
import { execFile } from "node:child_process";
import { resolve } from "node:path";
import { promisify } from "node:util";
import { expect, it } from "vitest";
import { init } from "../../dist/index.js";
import { smokeCheck } from "../browser/pages/smoke-check.js";

const repo = resolve(import.meta.dirname, "../..");
const entry = resolve(repo, "dist/index.js");
const check = resolve(repo, "test/browser/pages/smoke-check.js");

/** Runs `script` with `node -e` in the repository and parses the JSON it prints. */
async function nodeEval(script: string, inputType: "module" | "commonjs"): Promise<unknown> {
  const { stdout } = await promisify(execFile)(process.execPath, [`--input-type=${inputType}`, "-e", script], {
    cwd: repo,
    timeout: 20_000,
  });
  return JSON.parse(stdout);
}

it("imports by package name as ESM", async () => {
  const runs = await nodeEval(
    `import { init } from "wasm-batchnorm";
     import { smokeCheck } from ${JSON.stringify(check)};
     console.log(JSON.stringify(await smokeCheck(init)));`,
    "module",
  );
  expect(runs).toEqual(await smokeCheck(init));
}, 30_000);

it.each([entry, "wasm-batchnorm"])("require(%s) returns the ES module, and init works", async (specifier) => {
  const runs = await nodeEval(
    `const { init } = require(${JSON.stringify(specifier)});
     import(${JSON.stringify(check)})
       .then(({ smokeCheck }) => smokeCheck(init))
       .then((runs) => console.log(JSON.stringify(runs)));`,
    "commonjs",
  );
  expect(runs).toEqual(await smokeCheck(init));
}, 30_000);
