// Reporting shared by bench/run.mjs and bench/peers/run.mjs: derived metrics (GB/s of useful
// traffic, speedup over a baseline, ratio to the bandwidth bound), the console table, the JSON file,
// dependency-free SVG charts rendered from that JSON (GB/s per implementation; speed-up against
// threads), and markdown tables for the README.
//
// Re-render the SVGs and markdown of an existing JSON:  node bench/report.js bench/results/latest.json
import { execFileSync } from "node:child_process";
import { readFileSync, mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/**
 * Node, CPU, commit, date and load average (1, 5, 15 min: at `loadAtStart`, taken when the run began,
 * and now) of this run.
 * @param {number[]} [loadAtStart]  os.loadavg() when the run began
 */
export function environment(loadAtStart) {
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
    loadAverage: { start: loadAtStart ?? null, end: os.loadavg() },
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

/** A time with its unit: µs below 0.1 ms. */
export const fmtTime = (ms) => (ms < 0.1 ? `${(ms * 1000).toFixed(1)} µs` : `${ms.toFixed(3)} ms`);
/** "<sep>load average a → b" (1-minute, at the start and end of the run), or "" for older results. */
const loadNote = (env, sep = ", ") => (env.loadAverage?.start ? `${sep}load average ${env.loadAverage.start[0].toFixed(2)} → ${env.loadAverage.end[0].toFixed(2)}` : "");
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
  if (json.threads) lines.push("", ...threadsText(json));
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
    `${json.title}. Median ms per call (in parentheses: speed relative to ${json.impls.find((m) => m.id === json.settings.baseline)?.label ?? json.settings.baseline}); "bound" is the bandwidth bound (copy time × passes). ${env.cpu}, Node ${env.node}, ${json.settings.mode} run, ${env.date.slice(0, 10)}${env.commit ? `, commit ${env.commit}${env.dirty ? " + local changes" : ""}` : ""}${loadNote(env)}.`,
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
  if (json.threads) out.push("", ...threadsMarkdown(json));
  for (const section of json.sections ?? []) out.push("", `**${section.title}**`, "", ...section.markdown);
  return `${out.join("\n")}\n`;
}

// ---------------------------------------------------------------------------------------------
// Threads (json.threads, written by bench/run.mjs with bench/threads.js and bench/bandwidth.js)

const fmtLoad = (l) => l.map((x) => x.toFixed(2)).join(" ");
const plural = (t) => `${t} thread${t > 1 ? "s" : ""}`;
const fmtQ = (q, digits = 2) => `[${q[0].toFixed(digits)}, ${q[2].toFixed(digits)}]`;

/** The speed-up rows' tables as [header, rows] (console and markdown share them). */
function threadsRows(json) {
  const th = json.threads;
  const counts = th.counts.slice(1);
  const header = ["workload", "op", "implementation", "1 thread", ...counts.flatMap((t) => [plural(t), `${t}T / 1T [quartiles]`]), "target (2T)", ""];
  const rows = th.rows.map((r) => {
    const name = `${r.workload} ${th.names[r.workload]}`;
    if (r.status !== "ok") return [name, r.op, r.label, r.status.toUpperCase(), ...counts.flatMap(() => ["", ""]), "", r.reason];
    const cells = counts.flatMap((t) => {
      const i = r.threads.indexOf(t);
      return i < 0 ? ["–", "–"] : [fmtTime(r.ms[i]), `${r.speedup[i].toFixed(2)}× ${fmtQ(r.speedupQuartiles[i])}`];
    });
    const i2 = r.threads.indexOf(2);
    const met = r.target === undefined || i2 < 0 ? "" : r.speedup[i2] >= r.target ? "met" : "missed";
    return [name, r.op, r.label, fmtTime(r.ms[0]), ...cells, r.target === undefined ? "" : `≥ ${r.target}×`, met];
  });
  return { header, rows };
}

/** The paragraph above the threads tables. */
function threadsIntro(json) {
  const th = json.threads;
  return `Threads: the same call on backends with ${th.counts.map(plural).join(", ")} (init({ threads })), ${th.cores} cores; ${th.counts.slice(1).map((t) => `${t}T`).join(", ")} / 1T = 1-thread time / T-thread time (above 1: faster), paired: ${th.timing.rounds} rounds of interleaved batches of ~${th.timing.targetMs} ms; the times are medians per call, the ratio the median of the per-round ratios, with their quartiles in brackets. Every output checked against the float64 reference first.${th.splitBytes ? ` Tensors under ${th.splitBytes / 1024} KiB stay on one thread (Executor.splitBytes), so the tiny call runs there on every backend.` : ""} Load average (1, 5, 15 min) ${fmtLoad(th.loadAverage.before)} before, ${fmtLoad(th.loadAverage.after)} after${th.cpu ? `; while these rows ran, cores busy on average with this process ${th.cpu.ownCores.toFixed(2)}, with other processes ${th.cpu.otherCores.toFixed(2)}${th.cpu.stolenCores == null ? "" : `, stolen by the hypervisor ${th.cpu.stolenCores.toFixed(2)}`}` : ""}.`;
}

/** The async-vs-sync, ticker and bandwidth tables as { title, header, rows, note } for console and markdown. */
function threadsExtras(json) {
  const th = json.threads;
  const out = [];
  const a = th.async;
  out.push({
    title: `Async API against the sync one (S1, same backend; target: async / sync ≤ ${a.target})`,
    header: ["op", "threads", "sync", "async", "async / sync [quartiles]", ""],
    rows: a.rows.map((r) => (r.status === "ok"
      ? [r.op, String(r.threads), fmtTime(r.syncMs), fmtTime(r.asyncMs), `${r.ratio.toFixed(3)} ${fmtQ(r.ratioQuartiles, 3)}`, r.ratio <= r.target ? "met" : "missed"]
      : [r.op, String(r.threads), r.status.toUpperCase(), "", "", r.reason])),
    note: a.note,
  });
  const t = th.ticker;
  out.push({
    title: `A setInterval(1 ms) ticker while twenty ${t.workload ?? "S1"} ${t.op} calls run back to back (lateness = gap between ticks - 1 ms; target for async calls: worst ≤ ${t.targetMs} ms)`,
    header: ["calls", "wall", "ticks", "worst lateness", "p99 lateness", ""],
    rows: t.rows.map((r) => (r.status === "ok"
      ? [r.label, `${r.wallMs.toFixed(0)} ms`, String(r.ticks), `${r.worstMs.toFixed(2)} ms`, `${r.p99Ms.toFixed(2)} ms`, r.target === undefined ? "" : r.worstMs <= r.target ? "met" : "missed"]
      : [r.label, r.status.toUpperCase(), "", "", "", r.reason])),
    note: t.note,
  });
  const b = th.bandwidth;
  out.push({
    title: `Copy bandwidth: a ${(b.bytes / 1e6).toFixed(0)} MB buffer copied by T threads at once, each a 1/T part (wasm v128 loop in shared memory, bench/bandwidth.js; GB/s = read + write)`,
    header: ["threads", "ms per copy", "GB/s", "× 1 thread"],
    rows: b.rows.map((r) => [String(r.threads), r.ms.toFixed(2), r.gbps.toFixed(1), `${r.ratio.toFixed(2)}×`]),
    note: null,
  });
  return out;
}

/** Console lines for json.threads. */
function threadsText(json) {
  const { header, rows } = threadsRows(json);
  const align = header.map((_, i) => (i >= 3 && i < header.length - 1 ? "r" : "l"));
  const lines = [threadsIntro(json), "", textTable(header, rows, align)];
  for (const x of threadsExtras(json)) {
    lines.push("", x.title);
    if (x.note) lines.push(x.note);
    else lines.push(textTable(x.header, x.rows, x.header.map((_, i) => (i === 0 || i === x.header.length - 1 ? "l" : "r"))));
  }
  return lines;
}

/** Markdown for json.threads (the README's threads tables). */
export function threadsMarkdown(json) {
  const { header, rows } = threadsRows(json);
  // `text` columns (labels, and the met/missed column) left-aligned, numbers right-aligned
  const table = (h, rs, text) => [`| ${h.join(" | ")} |`, `|${h.map((_, i) => (i < text || i === h.length - 1 ? "---" : "---:")).join("|")}|`, ...rs.map((r) => `| ${r.join(" | ")} |`)];
  const out = ["**Threads**", "", threadsIntro(json), "", ...table(header, rows, 3)];
  for (const x of threadsExtras(json)) out.push("", `${x.title}:`, "", ...(x.note ? [x.note] : table(x.header, x.rows, 1)));
  return out;
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
    `<text x="${left}" y="37" fill="#555">${esc(`${env.cpu} · ${env.cores} cores · Node ${env.node} · ${json.settings.mode} run · ${env.date.slice(0, 16).replace("T", " ")} UTC${env.commit ? ` · commit ${env.commit}${env.dirty ? "+changes" : ""}` : ""}${loadNote(env, " · ")} · dashed line: copy bandwidth (bound) · ✗ wrong/failed, not timed`)}</text>`,
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

const OP_COLORS = { train: "#d94801", infer: "#2171b5", backward: "#2e7d32" };
/** Line dash per API: zero-copy solid, copying dashed. */
const dashOf = (id) => (id.includes("-copy") ? "6 3" : null);

/**
 * Speed-up against threads: one panel per workload (small multiples), x = threads (log2 spacing),
 * y = 1-thread time / T-thread time; a line per op and implementation with the per-round quartiles
 * as whiskers, the ideal speed-up (T) dashed grey, and the 2-thread target dotted red.
 * @param {object} json  a results file with `threads` (bench/run.mjs)
 */
export function threadsSvg(json) {
  const th = json.threads;
  const rows = th.rows.filter((r) => r.status === "ok");
  const panels = [...new Set(th.rows.map((r) => r.workload))];
  const impls = [...new Map(rows.map((r) => [r.impl, r.label])).entries()];
  const ops = [...new Set(rows.map((r) => r.op))];
  const counts = th.counts;
  const cols = Math.min(3, panels.length);
  const pw = 230;
  const ph = 170;
  const gapX = 56;
  const gapY = 62;
  const left = 56;
  const width = Math.max(760, left + cols * pw + (cols - 1) * gapX + 24);
  // legend: ops (colour), implementations (dash), ideal, target; wrapped to the width
  const legend = [
    ...ops.map((op) => [`stroke="${OP_COLORS[op] ?? "#333"}" stroke-width="2.5"`, op]),
    ...impls.map(([id, label]) => [`stroke="#333" stroke-width="2"${dashOf(id) ? ` stroke-dasharray="${dashOf(id)}"` : ""}`, label]),
    [`stroke="#999" stroke-dasharray="4 3"`, "ideal (T×)"],
    [`stroke="#c62828" stroke-dasharray="1 2" stroke-width="2"`, "target, 2 threads"],
  ].map(([style, text]) => ({ style, text, w: 34 + text.length * 6.2 }));
  let lx = left;
  let ly = 74;
  for (const item of legend) {
    if (lx + item.w > width - 16 && lx > left) {
      lx = left;
      ly += 16;
    }
    Object.assign(item, { x: lx, y: ly });
    lx += item.w;
  }
  const top = ly + 42;
  const height = top + Math.ceil(panels.length / cols) * (ph + gapY) + 30;
  const maxT = counts.at(-1);
  const highest = Math.max(maxT, ...rows.flatMap((r) => r.speedupQuartiles.map((q) => q[2])), ...panels.map((w) => th.targets[w] ?? 0));
  const step = niceStep(highest * 1.1, 5);
  const hi = Math.ceil((highest * 1.1) / step) * step;
  const xOf = (x0, t) => x0 + 14 + (maxT === 1 ? 0 : (Math.log2(t) / Math.log2(maxT)) * (pw - 28));
  const yOf = (y0, v) => y0 + ph - (Math.min(v, hi) / hi) * ph;

  const s = [];
  s.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif" font-size="11">`);
  s.push(`<rect width="100%" height="100%" fill="#fff"/>`);
  const env = json.environment;
  s.push(`<text x="${left}" y="20" font-size="15" font-weight="600">${esc(json.title)}: speed-up against threads (higher is better)</text>`);
  s.push(
    `<text x="${left}" y="37" fill="#555">${esc(`${env.cpu} · ${th.cores} cores · Node ${env.node} · ${json.settings.mode} run · ${env.date.slice(0, 16).replace("T", " ")} UTC${env.commit ? ` · commit ${env.commit}${env.dirty ? "+changes" : ""}` : ""}`)}</text>`,
    `<text x="${left}" y="52" fill="#555">${esc(`load average (1 min) ${th.loadAverage.before[0].toFixed(2)} → ${th.loadAverage.after[0].toFixed(2)} over these rows${th.cpu ? `; cores busy meanwhile with other processes ${th.cpu.otherCores.toFixed(2)}${th.cpu.stolenCores == null ? "" : `, stolen by the hypervisor ${th.cpu.stolenCores.toFixed(2)}`}` : ""}`)}</text>`,
  );
  for (const { style, text, x, y } of legend) s.push(`<line x1="${x}" x2="${x + 20}" y1="${y}" y2="${y}" ${style}/><text x="${x + 26}" y="${y + 4}">${esc(text)}</text>`);

  panels.forEach((wid, k) => {
    const x0 = left + (k % cols) * (pw + gapX);
    const y0 = top + Math.floor(k / cols) * (ph + gapY);
    s.push(`<text x="${x0 + pw / 2}" y="${y0 - 10}" text-anchor="middle" font-weight="600">${esc(`${wid} · ${th.names[wid] ?? ""}`)}</text>`);
    for (let v = 0; v <= hi + step / 2; v += step) {
      const y = yOf(y0, v).toFixed(1);
      s.push(`<line x1="${x0}" x2="${x0 + pw}" y1="${y}" y2="${y}" stroke="${Math.abs(v - 1) < 1e-9 ? "#bbb" : "#eee"}"/>`);
      s.push(`<text x="${x0 - 6}" y="${Number(y) + 4}" text-anchor="end" fill="#444">${Number(v.toPrecision(3))}</text>`);
    }
    s.push(`<line x1="${x0}" x2="${x0}" y1="${y0}" y2="${y0 + ph}" stroke="#333"/><line x1="${x0}" x2="${x0 + pw}" y1="${y0 + ph}" y2="${y0 + ph}" stroke="#333"/>`);
    for (const t of counts) s.push(`<text x="${xOf(x0, t)}" y="${y0 + ph + 15}" text-anchor="middle" fill="#444">${t}</text>`);
    s.push(`<text x="${x0 + pw / 2}" y="${y0 + ph + 30}" text-anchor="middle" fill="#333">threads</text>`);
    s.push(`<polyline points="${counts.map((t) => `${xOf(x0, t).toFixed(1)},${yOf(y0, t).toFixed(1)}`).join(" ")}" fill="none" stroke="#999" stroke-dasharray="4 3"/>`);
    const target = th.targets[wid];
    if (target !== undefined && counts.includes(2)) {
      const y = yOf(y0, target).toFixed(1);
      s.push(`<line x1="${x0}" x2="${x0 + pw}" y1="${y}" y2="${y}" stroke="#c62828" stroke-dasharray="1 2" stroke-width="2"><title>${esc(`target for 2 threads: ≥ ${target}×`)}</title></line>`);
    }
    for (const r of rows.filter((x) => x.workload === wid)) {
      const color = OP_COLORS[r.op] ?? "#333";
      const dash = dashOf(r.impl);
      const pts = r.threads.map((t, i) => [xOf(x0, t), yOf(y0, r.speedup[i])]);
      s.push(`<polyline points="${pts.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" ")}" fill="none" stroke="${color}" stroke-width="2"${dash ? ` stroke-dasharray="${dash}"` : ""}/>`);
      r.threads.forEach((t, i) => {
        if (i === 0) return;
        const [x, y] = pts[i];
        const [q1, , q3] = r.speedupQuartiles[i];
        const tip = esc(`${wid} ${r.op} · ${r.impl}: ${t} threads ${fmtTime(r.ms[i])} vs 1 thread ${fmtTime(r.ms[0])}, ${r.speedup[i].toFixed(2)}× [${q1.toFixed(2)}, ${q3.toFixed(2)}]`);
        s.push(`<line x1="${x.toFixed(1)}" x2="${x.toFixed(1)}" y1="${yOf(y0, q1).toFixed(1)}" y2="${yOf(y0, q3).toFixed(1)}" stroke="${color}" stroke-width="1"/>`);
        s.push(`<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="3" fill="${color}"><title>${tip}</title></circle>`);
      });
    }
    const failed = th.rows.filter((r) => r.workload === wid && r.status !== "ok");
    if (failed.length) s.push(`<text x="${x0 + 6}" y="${y0 + 14}" fill="#c62828" font-weight="700">✗ ${esc(failed.map((r) => `${r.op} ${r.impl} ${r.status}`).join(", "))}</text>`);
  });
  s.push(`<text x="${left}" y="${height - 22}" fill="#666" font-size="10">${esc("speed-up = 1-thread time / T-thread time of the same call; whiskers: quartiles of the per-round ratios")}</text>`);
  s.push(`<text x="${left}" y="${height - 8}" fill="#666" font-size="10">${esc("(paired, interleaved batches); each point's tooltip has both times.")}</text>`);
  s.push("</svg>");
  return `${s.join("\n")}\n`;
}

/**
 * Writes <dir>/<name>.json, .svg and .md (and <name>-threads.svg when the run has threads rows);
 * returns their paths.
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
  if (json.threads?.rows.length) {
    files.threadsSvg = path.join(dir, `${name}-threads.svg`);
    writeFileSync(files.threadsSvg, threadsSvg(json));
  }
  return files;
}

// CLI: re-render the SVG and markdown of a results JSON.
if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const file = process.argv[2] ?? path.join(ROOT, "bench/results/latest.json");
  const json = JSON.parse(readFileSync(file, "utf8"));
  const base = file.replace(/\.json$/, "");
  writeFileSync(`${base}.svg`, svg(json, { scale: process.argv[3] }));
  writeFileSync(`${base}.md`, markdown(json));
  if (json.threads?.rows.length) writeFileSync(`${base}-threads.svg`, threadsSvg(json));
  console.log(`wrote ${base}.svg${json.threads?.rows.length ? `, ${base}-threads.svg` : ""} and ${base}.md`);
}
