// The published declarations tell the truth under a user's strictest settings (issue 8 item 2):
// test/types/usage.ts imports the package by name (the built dist/*.d.ts) and is compiled with
// strict, lib ES2022 only, no @types and skipLibCheck false. Its positive cases must compile and
// every `@ts-expect-error` line must be an error, so tsc exits 0 only when both hold.
import { execFile } from "node:child_process";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { expect, it } from "vitest";

const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
const project = fileURLToPath(new URL("./types/tsconfig.json", import.meta.url));

it("usage.ts compiles against dist/*.d.ts with strict settings and minimal libs, and its negative cases are errors", async () => {
  const run = promisify(execFile)(process.execPath, [tsc, "-p", project], { encoding: "utf8" });
  await expect(run.then(({ stdout }) => stdout, (e: { stdout: string }) => e.stdout)).resolves.toBe("");
}, 60_000);
