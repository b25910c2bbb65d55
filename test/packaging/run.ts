// Child processes for the packaging tests: node -e in a given folder, and npm as a user's shell
// would run it (without the npm_* variables that the `npm test` running us exports).
import { execFile } from "node:child_process";
import { resolve } from "node:path";
import { promisify } from "node:util";

const check = resolve(import.meta.dirname, "../browser/pages/smoke-check.js");

/** Runs `script` with `node -e` in `cwd` and parses the JSON it prints. */
async function nodeEval(script: string, inputType: "module" | "commonjs", cwd: string): Promise<unknown> {
  const { stdout } = await promisify(execFile)(process.execPath, [`--input-type=${inputType}`, "-e", script], {
    cwd,
    timeout: 20_000,
  });
  return JSON.parse(stdout);
}

/**
 * smokeCheck (test/browser/pages/smoke-check.js) in a plain Node process in `cwd`, with `init` from
 * `import` (as ESM) or `require` (as CommonJS) of `specifier`, resolved as that folder's code would.
 */
export function smokeInNode(specifier: string, inputType: "module" | "commonjs", cwd: string): Promise<unknown> {
  const script =
    inputType === "module"
      ? `import { init } from ${JSON.stringify(specifier)};
         import { smokeCheck } from ${JSON.stringify(check)};
         console.log(JSON.stringify(await smokeCheck(init)));`
      : `const { init } = require(${JSON.stringify(specifier)});
         import(${JSON.stringify(check)})
           .then(({ smokeCheck }) => smokeCheck(init))
           .then((runs) => console.log(JSON.stringify(runs)));`;
  return nodeEval(script, inputType, cwd);
}

/** npm's own cache and config locations are kept; the rest describe this repository's `npm test`. */
const KEEP = new Set(["npm_config_cache", "npm_config_userconfig", "npm_config_globalconfig", "npm_config_registry"]);

/**
 * Runs `npm ...args` in `cwd`, preferring npm's cache (after `npm ci` it holds every package the
 * lock names, so nothing is fetched; a package it lacks comes from the registry); rejects with
 * npm's output when npm fails.
 */
export async function npm(args: string[], cwd: string, timeout = 150_000): Promise<{ stdout: string; stderr: string }> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k) || KEEP.has(k.toLowerCase())));
  const options = {
    cwd,
    timeout,
    env: { ...env, npm_config_prefer_offline: "true", npm_config_audit: "false", npm_config_fund: "false", npm_config_update_notifier: "false" },
  };
  try {
    return await promisify(execFile)("npm", args, options);
  } catch (e) {
    const { stdout = "", stderr = "" } = e as { stdout?: string; stderr?: string };
    throw new Error(`npm ${args.join(" ")} failed in ${cwd}:\n${stdout}${stderr}`);
  }
}
