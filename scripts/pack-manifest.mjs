// npm pack / npm publish (prepack and postpack): the packed package.json without the "prepare"
// script. "prepare" builds dist/ for a git or folder install and for contributors, but a package
// that carries it is listed by npm 11 as having an install script to review whenever its tarball is
// installed, though npm never runs it there. `strip` keeps the original next to it and removes
// the script; `restore` puts the original back byte for byte.
import { readFile, rename, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";

const manifest = "package.json";
const original = "package.json.prepack";

const mode = process.argv[2];
if (mode === "strip") {
  if (existsSync(original)) {
    throw new Error(`${original} exists: an earlier pack did not finish; move it back to ${manifest} first`);
  }
  const text = await readFile(manifest, "utf8");
  const pkg = JSON.parse(text);
  delete pkg.scripts.prepare;
  await writeFile(original, text);
  await writeFile(manifest, `${JSON.stringify(pkg, null, 2)}\n`);
} else if (mode === "restore") {
  await rename(original, manifest);
} else {
  throw new Error(`usage: node scripts/pack-manifest.mjs strip|restore (got ${mode})`);
}
