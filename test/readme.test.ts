// Every ```js example in the README runs as written (importing the package by name, so the built
// dist/ and package.json "exports" are what it uses).
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";

const root = fileURLToPath(new URL("..", import.meta.url));
const readme = readFileSync(join(root, "README.md"), "utf8");
const examples = [...readme.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]);

it("the README has examples", () => {
  expect(examples.length).toBeGreaterThanOrEqual(4);
});

it.each(examples.map((code, i) => [i + 1, code] as const))("README example %i runs", (n, code) => {
  // written inside the package folder, where "wasm-batchnorm" resolves to this package (self-reference)
  const dir = join(root, "test", "artifacts");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `readme-example-${n}.mjs`);
  writeFileSync(file, code);
  const out = execFileSync(process.execPath, [file], { encoding: "utf8" });
  expect(out.length).toBeGreaterThan(0);
});
