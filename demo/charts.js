// The demo's two charts, drawn as SVG (crisp at any size, styled from style.css by class name).

const SVG_NS = "http://www.w3.org/2000/svg";

/**
 * @param {string} tag
 * @param {Record<string, string | number>} attrs
 * @param {(Node | string)[]} content
 */
function el(tag, attrs, ...content) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  node.append(...content);
  return node;
}

/**
 * Tick positions at a 1-2-5 step covering [lo, hi] with about `count` ticks.
 * @param {number} lo
 * @param {number} hi
 */
function ticks(lo, hi, count = 6) {
  const raw = (hi - lo) / count;
  const pow = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * pow).find((s) => s >= raw) ?? raw;
  const out = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi; t += step) out.push(Math.round(t / step) * step);
  return out;
}

/**
 * @typedef {object} Bar
 * @property {string} label
 * @property {string} className colours the bar
 * @property {number | null} ms median time, or null when this implementation is unavailable
 * @property {string} note shown after the time
 */

/**
 * Horizontal bars of median time, one row per implementation; shorter is faster.
 * @param {SVGSVGElement} svg
 * @param {Bar[]} bars
 */
export function barChart(svg, bars) {
  const row = 46;
  const left = 150;
  const width = 720;
  const barSpace = 330;
  const slowest = Math.max(...bars.map((b) => b.ms ?? 0));
  svg.setAttribute("viewBox", `0 0 ${width} ${bars.length * row}`);
  svg.replaceChildren(
    ...bars.flatMap((b, i) => {
      const y = i * row + 8;
      const w = b.ms === null ? 0 : Math.max(2, (barSpace * b.ms) / slowest);
      const value = b.ms === null ? "unavailable" : `${b.ms < 10 ? b.ms.toFixed(2) : b.ms.toFixed(1)} ms`;
      return [
        el("text", { x: left - 12, y: y + 20, class: "bar-label", "text-anchor": "end" }, b.label),
        el("rect", { x: left, y, width: w, height: 30, rx: 5, class: `bar ${b.className}` }),
        el("text", { x: left + w + 10, y: y + 20, class: "bar-value" }, value, el("tspan", { dx: 10, class: "bar-note" }, b.note)),
      ];
    }),
  );
}

/**
 * Histogram of `values` over [lo, hi] (values outside are left out), with an optional normal
 * density curve scaled to the same area, to compare the shape by eye.
 * @param {SVGSVGElement} svg
 * @param {ArrayLike<number>} values
 * @param {{ lo: number, hi: number, bins?: number, normal?: { mean: number, sd: number } }} options
 */
export function histogram(svg, values, { lo, hi, bins = 48, normal }) {
  const width = 360;
  const height = 200;
  const plot = { left: 8, right: width - 8, top: 10, bottom: height - 24 };
  const counts = new Uint32Array(bins);
  const binWidth = (hi - lo) / bins;
  for (let i = 0; i < values.length; i++) {
    const b = Math.floor((values[i] - lo) / binWidth);
    if (b >= 0 && b < bins) counts[b]++;
  }
  const density = (/** @type {number} */ v) =>
    normal ? (values.length * binWidth * Math.exp(-0.5 * ((v - normal.mean) / normal.sd) ** 2)) / (normal.sd * Math.sqrt(2 * Math.PI)) : 0;
  const peak = Math.max(...counts, normal ? density(normal.mean) : 0, 1);
  const sx = (/** @type {number} */ v) => plot.left + ((v - lo) / (hi - lo)) * (plot.right - plot.left);
  const sy = (/** @type {number} */ n) => plot.bottom - (n / peak) * (plot.bottom - plot.top);

  const parts = [];
  counts.forEach((n, b) => {
    if (n) parts.push(el("rect", { x: sx(lo + b * binWidth) + 0.5, y: sy(n), width: sx(lo + binWidth) - sx(lo) - 1, height: plot.bottom - sy(n), class: "hist-bin" }));
  });
  if (normal) {
    const points = Array.from({ length: 121 }, (_, i) => {
      const v = lo + ((hi - lo) * i) / 120;
      return `${sx(v).toFixed(1)},${sy(density(v)).toFixed(1)}`;
    });
    parts.push(el("polyline", { points: points.join(" "), class: "hist-curve" }));
  }
  parts.push(el("line", { x1: plot.left, x2: plot.right, y1: plot.bottom, y2: plot.bottom, class: "axis" }));
  for (const t of ticks(lo, hi)) {
    parts.push(el("line", { x1: sx(t), x2: sx(t), y1: plot.bottom, y2: plot.bottom + 4, class: "axis" }));
    parts.push(el("text", { x: sx(t), y: height - 6, class: "tick", "text-anchor": "middle" }, String(Number(t.toPrecision(6)))));
  }
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.replaceChildren(...parts);
}
