// Leaks (issue 7 item 13): a WasmTensor dropped without free() is reclaimed by garbage collection,
// free() stays deterministic (and a collection after it does not free the block again), a `data` view
// keeps its tensor alive, and a module used again after dispose() and then dropped gives its block
// back. Garbage collection needs `node --expose-gc`, so the checks run in a child process
// (test/gc/reclaim.mjs) against the built package.
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";
import { BACKENDS } from "./helpers.js";

const script = fileURLToPath(new URL("./gc/reclaim.mjs", import.meta.url));
const entry = fileURLToPath(new URL("../dist/index.js", import.meta.url));

it.each(BACKENDS)("garbage collection reclaims dropped tensors and modules, %s backend", (name) => {
  const out = execFileSync(process.execPath, ["--expose-gc", script, entry, name], { encoding: "utf8", timeout: 60_000 });
  expect(JSON.parse(out)).toEqual({
    tensorHeldBeforeGC: true,
    tensorReclaimed: true,
    viewKeepsTensor: true,
    viewDroppedReclaimed: true,
    freeIsImmediate: true,
    freedNotReleasedAgain: true,
    moduleHeldAfterReuse: true,
    moduleReclaimed: true,
  });
});
