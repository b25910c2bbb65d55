// The demo's two charts, styled from style.css by class name: the bar chart is HTML (its text
// wraps and keeps its CSS size at any width); the histogram is SVG drawn in CSS pixels at the
// width it is shown, so its text is never scaled down on a phone (redraw it when that changes).

const SVG_NS = "http://www.w3.org/2000/svg";

/**
 * @param {string} ns
 * @param {string} tag
 * @param {Record<string, string | number>} attrs
 * @param {(Node | string)[]} content
 */
function make(ns, tag, attrs, ...content) {
  const node = document.createElementNS(ns, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  node.append(...content);
  return node;
}

const el = (/** @type {string} */ tag, /** @type {Record<string, string | number>} */ attrs, /** @type {(Node | string)[]} */ ...content) =>
  make(SVG_NS, tag, attrs, ...content);
const html = (/** @type {string} */ tag, /** @type {Record<string, string | number>} */ attrs, /** @type {(Node | string)[]} */ ...content) =>
  make("http://www.w3.org/1999/xhtml", tag, attrs, ...content);

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
 * Horizontal bars of median time, one row per implementation (its name and note above its bar,
 * the time after it); shorter is faster.
 * @param {HTMLElement} chart
 * @param {Bar[]} bars
 */
export function barChart(chart, bars) {
  const slowest = Math.max(...bars.map((b) => b.ms ?? 0));
  chart.replaceChildren(
    ...bars.map((b) => {
      const value = b.ms === null ? "unavailable" : `${b.ms < 10 ? b.ms.toFixed(2) : b.ms.toFixed(1)} ms`;
      const bar = html("span", { class: `bar ${b.className}` });
      // the bar's share of the space the longest bar gets (style.css)
      bar.style.setProperty("--share", String(b.ms === null ? 0 : b.ms / slowest));
      return html(
        "div",
        { class: "bar-row" },
        html("span", { class: "bar-label" }, b.label, " ", html("span", { class: "bar-note" }, b.note)),
        html("span", { class: "bar-track" }, bar, html("span", { class: "bar-value" }, value)),
      );
    }),
  );
}

/**
 * The svg's size in CSS pixels, which the drawing uses as its coordinates (1 unit = 1 px).
 * @param {SVGSVGElement} svg
 */
function pixelBox(svg) {
  const width = Math.max(120, Math.round(svg.clientWidth || 360));
  const height = Math.max(80, Math.round(svg.clientHeight || 200));
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  return { width, height };
}

/**
 * What an empty chart says (instead of a blank box).
 * @param {SVGSVGElement} svg
 * @param {string} text
 */
export function placeholder(svg, text) {
  const { width, height } = pixelBox(svg);
  svg.replaceChildren(el("text", { x: width / 2, y: height / 2, class: "placeholder", "text-anchor": "middle", "dominant-baseline": "middle" }, text));
}

/**
 * Histogram of `values` over [lo, hi] (values outside are left out, and the svg's data-plotted
 * says how many are in), with an optional normal density curve scaled to the same area, to
 * compare the shape by eye.
 * @param {SVGSVGElement} svg
 * @param {ArrayLike<number>} values
 * @param {{ lo: number, hi: number, bins?: number, normal?: { mean: number, sd: number } }} options
 */
export function histogram(svg, values, { lo, hi, bins = 48, normal }) {
  const { width, height } = pixelBox(svg);
  // side margins leave room for half a tick label at either end of the axis
  const plot = { left: 16, right: width - 16, top: 10, bottom: height - 24 };
  const counts = new Uint32Array(bins);
  const binWidth = (hi - lo) / bins;
  for (let i = 0; i < values.length; i++) {
    const b = Math.floor((values[i] - lo) / binWidth);
    if (b >= 0 && b < bins) counts[b]++;
  }
  svg.dataset.plotted = String(counts.reduce((a, b) => a + b, 0));
  svg.dataset.total = String(values.length);
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
  for (const t of ticks(lo, hi, Math.max(3, Math.min(8, Math.floor(width / 55))))) {
    parts.push(el("line", { x1: sx(t), x2: sx(t), y1: plot.bottom, y2: plot.bottom + 4, class: "axis" }));
    parts.push(el("text", { x: sx(t), y: height - 6, class: "tick", "text-anchor": "middle" }, String(Number(t.toPrecision(6)))));
  }
  svg.replaceChildren(...parts);
}
