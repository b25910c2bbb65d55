// The built package in plain Node, outside vitest's module loader: imported by its name (resolved
// through package.json "exports" by self-reference), and require()d as an ES module, which Node
// supports since 20.19 for modules without top-level await.
import { resolve } from "node:path";
import { expect, it } from "vitest";
import { init } from "../../dist/index.js";
import { smokeCheck } from "../browser/pages/smoke-check.js";
import { smokeInNode } from "./run.js";

const repo = resolve(import.meta.dirname, "../..");
const entry = resolve(repo, "dist/index.js");

it("imports by package name as ESM", async () => {
  expect(await smokeInNode("wasm-batchnorm", "module", repo)).toEqual(await smokeCheck(init));
}, 30_000);

it.each([entry, "wasm-batchnorm"])("require(%s) returns the ES module, and init works", async (specifier) => {
  expect(await smokeInNode(specifier, "commonjs", repo)).toEqual(await smokeCheck(init));
}, 30_000);
