// Reporting shared by bench/run.mjs and bench/peers/run.mjs: derived metrics (GB/s of useful
// traffic, speedup over a baseline, ratio to the bandwidth bound), the console table, the JSON file,
// a dependency-free SVG chart rendered from that JSON, and a markdown table for the README.
//
// Re-render the SVG and markdown of an existing JSON:  node bench/report.js bench/results/latest.json
import { execFileSync } from "node:child_process";
import { readFileSync, mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** Node, CPU, commit and date of this run. */
export function environment() {
  const git = (...args) => {
    try {
      return execFileSync("git", args, { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
    } catch {
      return null;
    }
  };
  const changed = git("status", "--porcelain", "--", "src", "assembly", "scripts", "package.json");
  const cpus = os.cpus();
  let version = null;
  try {
    version = JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")).version;
  } catch {
    // not fatal
  }
  return {
    node: process.version,
    v8: process.versions.v8,
    platform: `${process.platform} ${process.arch}`,
    cpu: cpus[0]?.model ?? "unknown",
    cores: cpus.length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    commit: git("rev-parse", "--short", "HEAD"),
    // uncommitted changes under src/, assembly/, scripts/ or package.json: the numbers are for the working tree
    dirty: changed === null ? null : changed.length > 0,
    package: version && `wasm-batchnorm ${version}`,
    date: new Date().toISOString(),
  };
}

/**
 * Adds gbps, boundMs, xBound and speedup to every timed result (in place) and returns json.
 * @param {{ results: object[], workloads: object[], ops: object[], settings: { baseline: string } }} json
 */
export function derive(json) {
  const byKey = new Map(json.results.filter((r) => r.status === "ok").map((r) => [`${r.workload}/${r.op}/${r.impl}`, r]));
  const copyOf = (w) => json.results.find((r) => r.workload === w && r.op === "copy" && r.status === "ok");
  for (const r of json.results) {
    if (r.status !== "ok" || !(r.medianMs > 0)) continue;
    const w = json.workloads.find((x) => x.id === r.workload);
    if (r.op === "copy") {
      r.gbps = (2 * w.bytes) / (r.medianMs / 1000) / 1e9;
      continue;
    }
    const op = json.ops.find((x) => x.id === r.op);
    r.gbps = (op.traffic * w.bytes) / (r.medianMs / 1000) / 1e9;
    const copy = copyOf(r.workload);
    if (copy) {
      r.boundMs = op.passes * copy.medianMs;
      r.xBound = r.medianMs / r.boundMs;
    }
    const base = byKey.get(`${r.workload}/${r.op}/${json.settings.baseline}`);
    if (base) r.speedup = base.medianMs / r.medianMs;
  }
  return json;
}

const fmtMs = (ms) => (ms === undefined ? "" : ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms >= 1 ? ms.toFixed(2) : ms.toFixed(3));
const fmtX = (x, digits = 2) => (x === undefined ? "" : x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x >= 0.1 ? x.toFixed(digits) : x.toPrecision(2));
const fmtErr = (e) => (e === undefined ? "" : Number.isNaN(e) ? "NaN" : e === 0 ? "0" : e.toExponential(0));
const opName = (json, id) => (id === "copy" ? "copy" : json.ops.find((o) => o.id === id)?.id ?? id);

/** Aligned plain-text table; `null` rows become separator lines. */
function textTable(header, rows, align) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.filter(Boolean).map((r) => String(r[i]).length)));
  const line = (cells) => cells.map((c, i) => (align[i] === "r" ? String(c).padStart(widths[i]) : String(c).padEnd(widths[i]))).join("  ").trimEnd();
  const rule = widths.map((w) => "-".repeat(w)).join("  ");
  return [line(header), rule, ...rows.map((r) => (r ? line(r) : ""))].join("\n");
}

/** The results in plan order: per workload, the copy yardstick, then each op's implementations. */
function ordered(json) {
  const implOrder = new Map(json.impls.map((m, i) => [m.id, i]));
  const wOrder = new Map(json.workloads.map((w, i) => [w.id, i]));
  const oOrder = new Map([["copy", -1], ...json.ops.map((o, i) => [o.id, i])]);
  return [...json.results].sort(
    (a, b) => wOrder.get(a.workload) - wOrder.get(b.workload) || oOrder.get(a.op) - oOrder.get(b.op) || implOrder.get(a.impl) - implOrder.get(b.impl),
  );
}

/** The console table (all results, n/a rows left out). */
export function consoleTable(json) {
  const baseLabel = json.impls.find((m) => m.id === json.settings.baseline)?.label ?? json.settings.baseline;
  const header = ["workload", "op", "implementation", "median ms", "±%", "GB/s", `vs ${json.settings.baseline}`, "x bound", "check"];
  const rows = [];
  let last = null;
  for (const r of ordered(json)) {
    if (r.status === "n/a") continue;
    const key = `${r.workload}/${r.op}`;
    if (last !== null && key !== last && r.op !== "copy" && !last.endsWith("/copy")) rows.push(null);
    if (last !== null && r.op === "copy") rows.push(null);
    last = key;
    const w = json.workloads.find((x) => x.id === r.workload);
    const status = r.status === "ok" ? fmtErr(r.check?.error) : r.status.toUpperCase();
    rows.push([
      `${r.workload} ${w.name}`,
      opName(json, r.op),
      r.label,
      r.status === "ok" ? fmtMs(r.medianMs) : "-",
      r.status === "ok" ? r.rme.toFixed(1) : "",
      r.gbps === undefined ? "" : r.gbps.toFixed(1),
      r.speedup === undefined ? "" : `${fmtX(r.speedup)}x`,
      r.xBound === undefined ? (r.op === "copy" ? "(bound)" : "") : fmtX(r.xBound),
      status,
    ]);
  }
  const table = textTable(header, rows, ["l", "l", "l", "r", "r", "r", "r", "r", "l"]);
  const problems = json.results.filter((r) => r.status === "wrong" || r.status === "failed");
  const lines = [
    table,
    "",
    `median ms: median of the tinybench samples. GB/s: ${json.settings.trafficDefinition}`,
    `vs ${json.settings.baseline}: median time of ${baseLabel} / this median (higher is faster). check: ${json.settings.toleranceDefinition}.`,
  ];
  if (json.settings.layoutNote) lines.push(json.settings.layoutNote);
  for (const r of problems) lines.push(`${r.status.toUpperCase()}: ${r.workload} ${r.op} ${r.label}: ${r.reason}`);
  return lines.join("\n");
}

/** A markdown table for the README: one row per workload and op, one column per implementation. */
export function markdown(json) {
  const impls = json.impls.filter((m) => m.group !== "yardstick" && json.results.some((r) => r.impl === m.id && r.status !== "n/a"));
  const pairs = [];
  for (const r of ordered(json)) {
    if (r.op === "copy" || pairs.some((p) => p.workload === r.workload && p.op === r.op)) continue;
    pairs.push({ workload: r.workload, op: r.op });
  }
  const cell = (r) => {
    if (!r || r.status === "n/a") return "–";
    if (r.status !== "ok") return `**${r.status}**`;
    const x = r.speedup !== undefined && r.impl !== json.settings.baseline ? ` (${r.speedup < 1 ? r.speedup.toPrecision(2) : fmtX(r.speedup, 1)}×)` : "";
    return `${fmtMs(r.medianMs)}${x}`;
  };
  const out = [];
  const env = json.environment;
  out.push(
    `${json.title}. Median ms per call (in parentheses: speed relative to ${json.impls.find((m) => m.id === json.settings.baseline)?.label ?? json.settings.baseline}); "bound" is the bandwidth bound (copy time × passes). ${env.cpu}, Node ${env.node}, ${json.settings.mode} run, ${env.date.slice(0, 10)}${env.commit ? `, commit ${env.commit}${env.dirty ? " + local changes" : ""}` : ""}.`,
    "",
  );
  out.push(`| workload | op | ${impls.map((m) => m.short ?? m.label).join(" | ")} | bound |`);
  out.push(`|---|---|${impls.map(() => "---:").join("|")}|---:|`);
  for (const p of pairs) {
    const w = json.workloads.find((x) => x.id === p.workload);
    const rs = impls.map((m) => json.results.find((r) => r.workload === p.workload && r.op === p.op && r.impl === m.id));
    const bound = rs.find((r) => r?.boundMs !== undefined)?.boundMs;
    out.push(`| ${w.id} ${w.name} | ${p.op} | ${rs.map(cell).join(" | ")} | ${bound === undefined ? "–" : fmtMs(bound)} |`);
  }
  out.push("", `GB/s and ratios to the bound are in \`${json.kind === "peers" ? "peers" : "latest"}.json\`. ${json.settings.trafficDefinition}`);
  if (json.settings.layoutNote) out.push("", json.settings.layoutNote);
  for (const section of json.sections ?? []) out.push("", `**${section.title}**`, "", ...section.markdown);
  return `${out.join("\n")}\n`;
}

// ---------------------------------------------------------------------------------------------
// SVG

const PALETTE = ["#9e9e9e", "#616161", "#8fb8de", "#1f77b4", "#f4b183", "#d95f02", "#b39ddb", "#5e35b1", "#a5d6a7", "#2e7d32", "#ef9a9a", "#c62828"];
const esc = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

function niceStep(max, target = 6) {
  const raw = max / target;
  const p = 10 ** Math.floor(Math.log10(raw));
  const m = raw / p;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

/**
 * A grouped bar chart of GB/s of useful traffic: one group per workload and op, one bar per
 * implementation, a dashed line at the copy bandwidth (the bound). Log scale when the values span
 * more than 30x (or `scale` says so).
 * @param {object} json  a results file written by writeResults
 * @param {{ scale?: 'log' | 'linear' }} [o]
 */
export function svg(json, o = {}) {
  const impls = json.impls.filter((m) => m.group !== "yardstick" && json.results.some((r) => r.impl === m.id && r.status !== "n/a"));
  const color = new Map(impls.map((m, i) => [m.id, m.color ?? PALETTE[i % PALETTE.length]]));
  // one group per workload and op, with a bar slot for each implementation that has a result there
  const groups = [];
  for (const r of ordered(json)) {
    if (r.op === "copy" || groups.some((g) => g.workload === r.workload && g.op === r.op)) continue;
    const present = impls.filter((m) => json.results.some((x) => x.workload === r.workload && x.op === r.op && x.impl === m.id && x.status !== "n/a"));
    groups.push({ workload: r.workload, op: r.op, impls: present });
  }
  const values = json.results.filter((r) => r.gbps > 0).map((r) => r.gbps);
  const maxV = Math.max(...values, 1e-9);
  const minV = Math.min(...values, maxV);
  const log = o.scale ? o.scale === "log" : maxV / minV > 30;

  const barW = impls.length > 8 ? 9 : 12;
  const gap = 18;
  const left = 64;
  const plotH = 300;
  let x = left + 12;
  for (const g of groups) {
    g.x0 = x;
    g.x1 = x + g.impls.length * barW;
    x = g.x1 + gap;
  }
  const width = Math.max(760, x + 16);
  let legendRows = 1;
  for (let lx = left, i = 0; i < impls.length; i++) {
    const w = 26 + impls[i].label.length * 6.4;
    if (lx + w > width - 16 && lx > left) {
      legendRows++;
      lx = left;
    }
    lx += w;
  }
  const top = 62 + 16 * legendRows;
  const height = top + plotH + 74;
  const bottom = top + plotH;

  let lo;
  let hi;
  let ticks;
  if (log) {
    const steps = [];
    for (let e = Math.floor(Math.log10(minV)) - 1; e <= Math.ceil(Math.log10(maxV)) + 1; e++) for (const m of [1, 2, 5]) steps.push(m * 10 ** e);
    lo = steps.filter((t) => t <= minV).pop();
    hi = steps.find((t) => t >= maxV * 1.05);
    ticks = steps.filter((t) => t >= lo * 0.999 && t <= hi * 1.001);
  } else {
    const step = niceStep(maxV * 1.05);
    lo = 0;
    hi = Math.ceil((maxV * 1.05) / step) * step;
    ticks = [];
    for (let t = 0; t <= hi + step / 2; t += step) ticks.push(t);
  }
  const yOf = (v) => (log ? bottom - ((Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * plotH : bottom - ((v - lo) / (hi - lo)) * plotH);
  const tickLabel = (t) => (t >= 1 ? String(Math.round(t * 100) / 100) : String(Number(t.toPrecision(2))));

  const s = [];
  s.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif" font-size="11">`);
  s.push(`<rect width="100%" height="100%" fill="#fff"/>`);
  const env = json.environment;
  s.push(`<text x="${left}" y="20" font-size="15" font-weight="600">${esc(json.title)}: GB/s of useful traffic (higher is better)</text>`);
  s.push(
    `<text x="${left}" y="37" fill="#555">${esc(`${env.cpu} · ${env.cores} cores · Node ${env.node} · ${json.settings.mode} run · ${env.date.slice(0, 16).replace("T", " ")} UTC${env.commit ? ` · commit ${env.commit}${env.dirty ? "+changes" : ""}` : ""} · dashed line: copy bandwidth (bound) · ✗ wrong/failed, not timed`)}</text>`,
  );
  let lx = left;
  let ly = 56;
  for (const m of impls) {
    const w = 26 + m.label.length * 6.4;
    if (lx + w > width - 16 && lx > left) {
      lx = left;
      ly += 16;
    }
    s.push(`<rect x="${lx}" y="${ly - 9}" width="10" height="10" fill="${color.get(m.id)}"/><text x="${lx + 14}" y="${ly}">${esc(m.label)}</text>`);
    lx += w;
  }
  // axis and grid
  for (const t of ticks) {
    const y = yOf(t).toFixed(1);
    s.push(`<line x1="${left}" x2="${width - 16}" y1="${y}" y2="${y}" stroke="#e5e5e5"/>`);
    s.push(`<text x="${left - 6}" y="${Number(y) + 4}" text-anchor="end" fill="#444">${tickLabel(t)}</text>`);
  }
  s.push(`<line x1="${left}" x2="${left}" y1="${top}" y2="${bottom}" stroke="#333"/>`);
  s.push(`<line x1="${left}" x2="${width - 16}" y1="${bottom}" y2="${bottom}" stroke="#333"/>`);
  s.push(`<text transform="translate(16 ${top + plotH / 2}) rotate(-90)" text-anchor="middle" fill="#333">GB/s${log ? " (log scale)" : ""}</text>`);

  for (const g of groups) {
    const x0 = g.x0;
    const w = json.workloads.find((x) => x.id === g.workload);
    const copy = json.results.find((r) => r.workload === g.workload && r.op === "copy" && r.gbps > 0);
    g.impls.forEach((m, i) => {
      const r = json.results.find((x) => x.workload === g.workload && x.op === g.op && x.impl === m.id);
      const x = x0 + i * barW;
      if (r?.gbps > 0) {
        const y = Math.max(top, yOf(Math.max(r.gbps, lo)));
        s.push(
          `<rect x="${x}" y="${y.toFixed(1)}" width="${barW - 2}" height="${(bottom - y).toFixed(1)}" fill="${color.get(m.id)}"><title>${esc(`${w.id} ${g.op} · ${m.label}: ${fmtMs(r.medianMs)} ms, ${r.gbps.toFixed(2)} GB/s${r.speedup ? `, ${fmtX(r.speedup)}x vs ${json.settings.baseline}` : ""}${r.xBound ? `, ${fmtX(r.xBound)}x bound` : ""}`)}</title></rect>`,
        );
      } else if (r && (r.status === "wrong" || r.status === "failed")) {
        s.push(`<text x="${x + (barW - 2) / 2}" y="${bottom - 4}" text-anchor="middle" fill="#c62828" font-weight="700"><title>${esc(`${m.label}: ${r.status}: ${r.reason}`)}</title>✗</text>`);
      }
    });
    if (copy) {
      const y = yOf(copy.gbps).toFixed(1);
      s.push(`<line x1="${x0 - 3}" x2="${g.x1 + 1}" y1="${y}" y2="${y}" stroke="#000" stroke-dasharray="4 3"><title>${esc(`${w.id} copy: ${copy.gbps.toFixed(2)} GB/s`)}</title></line>`);
    }
    s.push(`<text x="${(x0 + g.x1) / 2}" y="${bottom + 15}" text-anchor="middle">${esc(g.op)}</text>`);
  }
  // one label per workload, under its groups, with separators between workloads
  for (let gi = 0; gi < groups.length; ) {
    let gj = gi;
    while (gj + 1 < groups.length && groups[gj + 1].workload === groups[gi].workload) gj++;
    const w = json.workloads.find((x) => x.id === groups[gi].workload);
    const xa = groups[gi].x0 - gap / 2;
    const xb = groups[gj].x1 + gap / 2;
    if (gi > 0) s.push(`<line x1="${xa}" x2="${xa}" y1="${top}" y2="${bottom + 40}" stroke="#ccc"/>`);
    const label = xb - xa > w.name.length * 6.5 + 30 ? `${w.id} · ${w.name}` : w.id;
    s.push(`<text x="${(xa + xb) / 2}" y="${bottom + 32}" text-anchor="middle" font-weight="600">${esc(label)}</text>`);
    gi = gj + 1;
  }
  s.push(`<text x="${left}" y="${height - 12}" fill="#666" font-size="10">${esc("useful traffic: inference 2×, training 3×, backward 5× the tensor's bytes per call; each bar's tooltip has the median time.")}</text>`);
  s.push("</svg>");
  return `${s.join("\n")}\n`;
}

/**
 * Writes <dir>/<name>.json, .svg and .md; returns their paths.
 * @param {string} dir
 * @param {string} name
 * @param {object} json
 */
export function writeResults(dir, name, json) {
  mkdirSync(dir, { recursive: true });
  const files = { json: path.join(dir, `${name}.json`), svg: path.join(dir, `${name}.svg`), md: path.join(dir, `${name}.md`) };
  writeFileSync(files.json, `${JSON.stringify(json, (k, v) => (typeof v === "number" && !Number.isInteger(v) ? Number(v.toPrecision(6)) : v), 2)}\n`);
  writeFileSync(files.svg, svg(json));
  writeFileSync(files.md, markdown(json));
  return files;
}

// CLI: re-render the SVG and markdown of a results JSON.
if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const file = process.argv[2] ?? path.join(ROOT, "bench/results/latest.json");
  const json = JSON.parse(readFileSync(file, "utf8"));
  const base = file.replace(/\.json$/, "");
  writeFileSync(`${base}.svg`, svg(json, { scale: process.argv[3] }));
  writeFileSync(`${base}.md`, markdown(json));
  console.log(`wrote ${base}.svg and ${base}.md`);
}
