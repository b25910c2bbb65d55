// One source of truth for the kernel interface: the `export function` signatures and exported
// constants of assembly/*.ts (as assembly/index.ts re-exports them) are the truth; every build's wasm
// exports (names, kinds, arity) and the hand-written `interface Kernels` of src/kernels.ts (names,
// parameter names in order, parameter and return types) must match them exactly, both ways.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { BUILDS, load } from "./harness.js";
import { instantiate } from "../../src/kernels.js";

const root = fileURLToPath(new URL("../../", import.meta.url));
const read = (path: string): string => readFileSync(root + path, "utf8");

/** A declared member: a function with named, typed parameters, or a numeric constant (a wasm global). */
type Member = { kind: "function"; params: { name: string; type: string }[]; returns: string } | { kind: "constant"; value?: number };

/** The text without comments (strings kept, so `"./x"` and `"a//b"` survive). */
function stripComments(text: string): string {
  let out = "";
  for (let i = 0; i < text.length; ) {
    const ch = text[i];
    if (ch === '"' || ch === "'" || ch === "`") {
      let j = i + 1;
      while (j < text.length && text[j] !== ch) j += text[j] === "\\" ? 2 : 1;
      out += text.slice(i, j + 1);
      i = j + 1;
    } else if (text.startsWith("//", i)) {
      while (i < text.length && text[i] !== "\n") i++;
    } else if (text.startsWith("/*", i)) {
      const end = text.indexOf("*/", i + 2);
      i = end < 0 ? text.length : end + 2;
      out += " ";
    } else {
      out += ch;
      i++;
    }
  }
  return out;
}

const OPEN: Record<string, string> = { "(": ")", "{": "}", "[": "]", "<": ">" };

/** Index just past the bracket that closes the one at `start`. */
function closing(text: string, start: number): number {
  const stack: string[] = [];
  for (let i = start; i < text.length; i++) {
    const ch = text[i];
    if (OPEN[ch]) stack.push(OPEN[ch]);
    else if (ch === "=" && text[i + 1] === ">") i++; // an arrow is not a closing bracket
    else if (ch === stack[stack.length - 1]) {
      stack.pop();
      if (stack.length === 0) return i + 1;
    }
  }
  throw new Error(`unbalanced ${text[start]} at ${start}`);
}

/** Splits at top-level `sep` (outside brackets), trimming and dropping empty parts. */
function splitTop(text: string, sep: string): string[] {
  const parts: string[] = [];
  let depth = 0, from = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (OPEN[ch]) depth++;
    else if (ch === "=" && text[i + 1] === ">") i++;
    else if (")}]>".includes(ch)) depth--;
    else if (ch === sep && depth === 0) {
      parts.push(text.slice(from, i));
      from = i + 1;
    }
  }
  parts.push(text.slice(from));
  return parts.map((p) => p.trim()).filter(Boolean);
}

/** `name: type`, `name?: type` or `name: type = default` -> { name, type }. */
function param(text: string): { name: string; type: string } {
  const m = /^(\w+)\s*\??\s*:\s*([^=]+?)\s*(?:=[\s\S]*)?$/.exec(text);
  if (!m) throw new Error(`cannot read parameter "${text}"`);
  return { name: m[1], type: m[2].replace(/\s+/g, " ") };
}

/** The JS type a wasm value of AssemblyScript type `t` crosses the boundary as. */
function jsType(t: string): string {
  if (t === "void") return "void";
  if (/^(i64|u64)$/.test(t)) return "bigint";
  if (/^(i8|u8|i16|u16|i32|u32|f32|f64|bool|usize|isize)$/.test(t)) return "number";
  throw new Error(`no JS type for AssemblyScript type ${t}`);
}

/** `export function name(...): ret` or `export const NAME: type = value` in an AssemblyScript file. */
function declaration(file: string, text: string, name: string): Member {
  const fn = new RegExp(`\\bexport\\s+function\\s+${name}\\s*\\(`).exec(text);
  if (fn) {
    const open = fn.index + fn[0].length - 1;
    const close = closing(text, open);
    const ret = /^\s*:\s*([\w<>]+)/.exec(text.slice(close));
    if (!ret) throw new Error(`${file}: ${name} has no declared return type`);
    const params = splitTop(text.slice(open + 1, close - 1), ",").map(param);
    return { kind: "function", params: params.map((p) => ({ name: p.name, type: jsType(p.type) })), returns: jsType(ret[1]) };
  }
  const constant = new RegExp(`\\bexport\\s+const\\s+${name}\\s*(?::\\s*(\\w+))?\\s*=\\s*([^;]+);`).exec(text);
  if (constant) {
    const literal = /^-?\d+(\.\d+)?$/.test(constant[2].trim()) ? Number(constant[2]) : undefined;
    return { kind: "constant", value: literal };
  }
  throw new Error(`${file}: no exported function or constant ${name}`);
}

/** What assembly/index.ts exports: its own declarations and `export { a, b as c } from "./file"`. */
function assemblyInterface(): Map<string, Member> {
  const index = stripComments(read("assembly/index.ts"));
  const out = new Map<string, Member>();
  let rest = index;
  for (const m of index.matchAll(/export\s*\{([^}]*)\}\s*from\s*["']\.\/([\w/.-]+?)(?:\.ts)?["']\s*;?/g)) {
    const file = `assembly/${m[2]}.ts`;
    const text = stripComments(read(file));
    for (const spec of splitTop(m[1], ",")) {
      const [local, exported = local] = spec.split(/\s+as\s+/).map((s) => s.trim());
      out.set(exported, declaration(file, text, local));
    }
    rest = rest.replace(m[0], "");
  }
  for (const m of index.matchAll(/export\s+(?:function|const)\s+(\w+)/g)) out.set(m[1], declaration("assembly/index.ts", index, m[1]));
  rest = rest.replace(/export\s+(?=function|const)/g, "");
  if (/\bexport\b/.test(rest)) throw new Error(`assembly/index.ts has an export form this test does not read: ${/\bexport\b[^;]*/.exec(rest)![0]}`);
  return out;
}

/** The members of `interface Kernels` in src/kernels.ts. */
function typescriptInterface(): Map<string, Member> {
  const text = stripComments(read("src/kernels.ts"));
  const head = /\binterface\s+Kernels\s*\{/.exec(text);
  if (!head) throw new Error("src/kernels.ts declares no interface Kernels");
  const open = head.index + head[0].length - 1;
  const body = text.slice(open + 1, closing(text, open) - 1);
  const out = new Map<string, Member>();
  for (const member of splitTop(body, ";")) {
    const method = /^(\w+)\s*\(([\s\S]*)\)\s*:\s*([\s\S]+)$/.exec(member);
    const property = /^(?:readonly\s+)?(\w+)\s*:\s*([\s\S]+)$/.exec(member);
    if (method) {
      const params = splitTop(method[2], ",").map(param);
      out.set(method[1], { kind: "function", params, returns: method[3].trim() });
    } else if (property && /^\{\s*(?:readonly\s+)?value\s*:\s*number\s*;?\s*\}$/.test(property[2].trim())) {
      out.set(property[1], { kind: "constant" });
    } else {
      throw new Error(`interface Kernels: cannot read member "${member.replace(/\s+/g, " ")}"`);
    }
  }
  return out;
}

/** Differences between the assembly truth and the TypeScript interface. */
function compareSources(truth: Map<string, Member>, ts: Map<string, Member>): string[] {
  const out: string[] = [];
  for (const [name, want] of truth) {
    const got = ts.get(name);
    if (!got) out.push(`Kernels lacks ${name}, which assembly/index.ts exports`);
    else if (got.kind !== want.kind) out.push(`${name}: a ${got.kind} in Kernels, a ${want.kind} in assembly/`);
    else if (got.kind === "function" && want.kind === "function") {
      const g = got.params.map((p) => `${p.name}: ${p.type}`).join(", ");
      const w = want.params.map((p) => `${p.name}: ${p.type}`).join(", ");
      if (g !== w) out.push(`${name}: Kernels has (${g}), assembly/ has (${w})`);
      if (got.returns !== want.returns) out.push(`${name}: Kernels returns ${got.returns}, assembly/ returns ${want.returns}`);
    }
  }
  for (const name of ts.keys()) if (!truth.has(name)) out.push(`Kernels declares ${name}, which assembly/index.ts does not export`);
  return out;
}

describe("the kernel interface has one source of truth", () => {
  const truth = assemblyInterface();
  const ts = typescriptInterface();

  it("src/kernels.ts declares exactly the assembly exports, with the same parameters in the same order", () => {
    expect(compareSources(truth, ts)).toEqual([]);
  });

  it.each(BUILDS)("the $label build exports exactly what assembly/ declares, with the same arity", async (build) => {
    const { module } = await instantiate(build.name, build.threaded);
    const k = (await load(build)).kernels as unknown as Record<string, unknown>;
    const out: string[] = [];
    const exported = WebAssembly.Module.exports(module);
    for (const { name, kind } of exported) {
      const want = truth.get(name), typed = ts.get(name);
      if (typed?.kind === "function" && kind === "function" && (k[name] as () => unknown).length !== typed.params.length) {
        out.push(`${name}: wasm takes ${(k[name] as () => unknown).length} parameters, Kernels declares ${typed.params.length}`);
      }
      if (!typed) out.push(`wasm exports ${kind} ${name}, which Kernels does not declare`);
      if (!want) out.push(`wasm exports ${kind} ${name}, which assembly/index.ts does not`);
      else if (kind === "function" && want.kind === "function") {
        const arity = (k[name] as (...a: number[]) => unknown).length;
        if (arity !== want.params.length) out.push(`${name}: wasm takes ${arity} parameters, assembly/ declares ${want.params.length}`);
      } else if (kind === "global" && want.kind === "constant") {
        const value = (k[name] as WebAssembly.Global).value;
        if (want.value !== undefined && value !== want.value) out.push(`${name}: wasm global ${value}, assembly/ says ${want.value}`);
      } else out.push(`${name}: wasm ${kind}, assembly/ ${want.kind}`);
    }
    for (const name of truth.keys()) if (!exported.some((e) => e.name === name)) out.push(`wasm lacks ${name}`);
    expect(out).toEqual([]);
  });

  it("catches a parameter added, renamed or moved on one side only", () => {
    // mutations of the truth itself, so the check does not depend on the two sides agreeing today
    const [name, member] = [...truth].find(([, m]) => m.kind === "function" && m.params.length > 1) as [string, Extract<Member, { kind: "function" }>];
    const added = new Map(truth).set(name, { ...member, params: [...member.params, { name: "extra", type: "number" }] });
    const renamed = new Map(truth).set(name, { ...member, params: member.params.map((p, i) => (i === 0 ? { ...p, name: "other" } : p)) });
    const swapped = new Map(truth).set(name, { ...member, params: [member.params[1], member.params[0], ...member.params.slice(2)] });
    const gone = new Map(truth);
    gone.delete(name);
    expect(compareSources(truth, truth)).toEqual([]);
    for (const side of [added, renamed, swapped, gone]) {
      expect(compareSources(truth, side)).toHaveLength(1);
      expect(compareSources(side, truth)).toHaveLength(1);
    }
  });

  it("reads parameter lists across line breaks and comments", () => {
    const text = "interface Kernels {\n  /** doc */ f(\n    a: number, // one\n    b: number,\n  ): void;\n  K: { readonly value: number };\n}";
    const body = stripComments(text);
    expect(body).not.toContain("doc");
    expect(splitTop(body.slice(body.indexOf("{") + 1, body.lastIndexOf("}")), ";").map((m) => m.replace(/\s+/g, ""))).toEqual([
      "f(a:number,b:number,):void",
      "K:{readonlyvalue:number}",
    ]);
  });
});
