// docs/api/ (the API reference, `npm run docs`) is what TypeDoc makes of src/ today: regenerated
// into a temporary folder, it must match file for file, so a changed doc comment or signature
// without a rebuilt reference fails here.
import { execFile } from "node:child_process";
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { expect, it } from "vitest";

const repo = resolve(import.meta.dirname, "..");
const committed = join(repo, "docs/api");

/** path -> contents of every file under `dir`. */
async function tree(dir: string): Promise<Map<string, string>> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  const files = entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
  return new Map(await Promise.all(files.sort().map(async (f) => [f.slice(dir.length + 1), await readFile(f, "utf8")] as const)));
}

it("docs/api is up to date with the doc comments in src/ (else run `npm run docs`)", async () => {
  const out = await mkdtemp(join(tmpdir(), "wasm-batchnorm-docs-"));
  try {
    // src/wasm.generated.ts, which TypeDoc compiles with the rest, exists: npm test builds first
    await promisify(execFile)(process.execPath, [join(repo, "node_modules/typedoc/bin/typedoc"), "--out", out], { cwd: repo, timeout: 60_000 });
    const fresh = await tree(out);
    const current = await tree(committed);
    expect([...current.keys()], "files in docs/api").toEqual([...fresh.keys()]);
    for (const [file, text] of fresh) expect(current.get(file), `docs/api/${file}`).toBe(text);
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}, 60_000);
