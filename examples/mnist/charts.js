// Hand-written SVG line charts for the MNIST experiments (no chart dependency): axes with ticks,
// grid, lines with optional per-point markers and shaded bands, a legend. Returns strings, so it
// runs in Node and in browsers alike.

const FONT = "system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif";

/** @param {string} s */
const esc = (s) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** @param {number} v */
const fmt = (v) => (Math.abs(v) >= 1000 || Number.isInteger(v) ? String(Math.round(v * 1000) / 1000) : String(Number(v.toPrecision(3))));

/**
 * Ticks at a 1-2-5 step covering [lo, hi], about `count` of them.
 * @param {number} lo
 * @param {number} hi
 * @param {number} count
 */
function linearTicks(lo, hi, count) {
  const raw = (hi - lo) / count;
  const pow = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * pow).find((s) => s >= raw) ?? raw;
  const out = [];
  for (let t = Math.ceil(lo / step - 1e-9) * step; t <= hi + step * 1e-9; t += step) out.push(Math.round(t / step) * step);
  return out;
}

/**
 * @typedef {object} Axis
 * @property {string} label
 * @property {number} min
 * @property {number} max
 * @property {boolean} [log] log scale (base 2 ticks unless `ticks` is given)
 * @property {number[]} [ticks]
 * @property {(v: number) => string} [format] tick labels
 */

/**
 * @typedef {object} Series
 * @property {string} label legend text ("" to leave it out of the legend)
 * @property {string} color
 * @property {[number, number][]} [line] points joined by a line (a null y breaks it)
 * @property {string} [dash] stroke-dasharray
 * @property {[number, number][]} [dots] unjoined markers
 * @property {boolean} [hollow] hollow markers
 * @property {[number, number, number][]} [band] x, low, high: a shaded area
 */

/**
 * @typedef {object} Chart
 * @property {string} title "" for none
 * @property {Axis} x
 * @property {Axis} y
 * @property {Series[]} series
 * @property {{ y: number, label: string }[]} [rules] dashed horizontal lines with a label
 * @property {"top-left" | "top-right" | "middle-right" | "bottom-left" | "bottom-right" | "below"} [legend]
 *   inside the plot (default bottom-right) or in a row under the x axis
 */

/**
 * One chart as an SVG group of `width` x `height` at (left, top).
 * @param {Chart} c
 * @param {{ left: number, top: number, width: number, height: number }} box
 */
export function chartGroup(c, { left, top, width, height }) {
  const pad = { l: 58, r: 14, t: 30, b: c.legend === "below" ? 66 : 44 };
  const w = width - pad.l - pad.r;
  const h = height - pad.t - pad.b;
  const scale = (/** @type {Axis} */ a, /** @type {number} */ size, /** @type {boolean} */ flip) => {
    const f = a.log ? Math.log2 : (/** @type {number} */ v) => v;
    const lo = f(a.min);
    const hi = f(a.max);
    return (/** @type {number} */ v) => {
      const t = (f(v) - lo) / (hi - lo);
      return Math.round((flip ? 1 - t : t) * size * 10) / 10;
    };
  };
  const X = scale(c.x, w, false);
  const Y = scale(c.y, h, true);
  const ticksOf = (/** @type {Axis} */ a) =>
    a.ticks ?? (a.log ? Array.from({ length: Math.floor(Math.log2(a.max)) - Math.ceil(Math.log2(a.min)) + 1 }, (_, i) => 2 ** (Math.ceil(Math.log2(a.min)) + i)) : linearTicks(a.min, a.max, 6));
  const s = [`<g transform="translate(${left + pad.l},${top + pad.t})">`];
  if (c.title) s.push(`<text x="${w / 2}" y="-12" text-anchor="middle" font-size="13" font-weight="600">${esc(c.title)}</text>`);
  for (const t of ticksOf(c.x)) {
    s.push(`<line x1="${X(t)}" x2="${X(t)}" y1="0" y2="${h}" stroke="#e6e6e6"/>`);
    s.push(`<text x="${X(t)}" y="${h + 16}" text-anchor="middle">${esc((c.x.format ?? fmt)(t))}</text>`);
  }
  for (const t of ticksOf(c.y)) {
    s.push(`<line x1="0" x2="${w}" y1="${Y(t)}" y2="${Y(t)}" stroke="#e6e6e6"/>`);
    s.push(`<text x="-6" y="${Y(t) + 4}" text-anchor="end">${esc((c.y.format ?? fmt)(t))}</text>`);
  }
  s.push(`<rect x="0" y="0" width="${w}" height="${h}" fill="none" stroke="#888"/>`);
  s.push(`<text x="${w / 2}" y="${h + 36}" text-anchor="middle">${esc(c.x.label)}</text>`);
  s.push(`<text transform="translate(-44,${h / 2}) rotate(-90)" text-anchor="middle">${esc(c.y.label)}</text>`);
  for (const r of c.rules ?? []) {
    s.push(`<line x1="0" x2="${w}" y1="${Y(r.y)}" y2="${Y(r.y)}" stroke="#555" stroke-dasharray="2 3"/>`);
    s.push(`<text x="4" y="${Y(r.y) - 8}" fill="#555">${esc(r.label)}</text>`);
  }
  for (const se of c.series) {
    if (se.band?.length) {
      const upper = se.band.map(([x, , hi]) => `${X(x)},${Y(hi)}`);
      const lower = se.band.map(([x, lo]) => `${X(x)},${Y(lo)}`).reverse();
      s.push(`<polygon points="${[...upper, ...lower].join(" ")}" fill="${se.color}" fill-opacity="0.18" stroke="none"/>`);
    }
  }
  for (const se of c.series) {
    if (se.line?.length) {
      let d = "";
      let pen = "M";
      for (const [x, y] of se.line) {
        if (y === null || !Number.isFinite(y)) {
          pen = "M";
          continue;
        }
        d += `${pen}${X(x)},${Y(y)}`;
        pen = "L";
      }
      s.push(`<path d="${d}" fill="none" stroke="${se.color}" stroke-width="2"${se.dash ? ` stroke-dasharray="${se.dash}"` : ""}/>`);
    }
    for (const [x, y] of se.dots ?? []) {
      s.push(`<circle cx="${X(x)}" cy="${Y(y)}" r="3.2" fill="${se.hollow ? "white" : se.color}" stroke="${se.color}" stroke-width="1.5"/>`);
    }
  }
  const shown = c.series.filter((se) => se.label);
  if (shown.length) {
    const widths = shown.map((se) => 44 + se.label.length * 6.3);
    const below = c.legend === "below";
    const lw = below ? widths.reduce((a, b) => a + b + 10, 0) : Math.max(...widths) + 12;
    const lh = below ? 22 : shown.length * 17 + 8;
    const where = c.legend ?? "bottom-right";
    const lx = below ? (w - lw) / 2 : where.endsWith("left") ? 8 : w - lw - 8;
    const ly = below ? h + 44 : where.startsWith("top") ? 8 : where.startsWith("middle") ? (h - lh) / 2 : h - lh - 8;
    s.push(`<g transform="translate(${lx},${ly})"><rect width="${lw}" height="${lh}" fill="white" fill-opacity="0.92" stroke="#bbb"/>`);
    let x = 0;
    shown.forEach((se, i) => {
      const y = below ? 14 : 14 + i * 17;
      const g = [];
      if (se.band?.length) g.push(`<rect x="8" y="${y - 7}" width="24" height="10" fill="${se.color}" fill-opacity="0.18"/>`);
      if (se.line?.length || se.band?.length) {
        g.push(`<line x1="8" x2="32" y1="${y - 2}" y2="${y - 2}" stroke="${se.color}" stroke-width="2"${se.dash ? ` stroke-dasharray="${se.dash}"` : ""}/>`);
      }
      if (se.dots?.length) g.push(`<circle cx="20" cy="${y - 2}" r="3.2" fill="${se.hollow ? "white" : se.color}" stroke="${se.color}" stroke-width="1.5"/>`);
      g.push(`<text x="38" y="${y + 2}">${esc(se.label)}</text>`);
      s.push(below ? `<g transform="translate(${x},0)">${g.join("")}</g>` : g.join("\n"));
      x += widths[i] + 10;
    });
    s.push("</g>");
  }
  s.push("</g>");
  return s.join("\n");
}

/**
 * A standalone SVG document: charts side by side, a caption line underneath.
 * @param {Chart[]} charts
 * @param {{ width?: number, height?: number, caption?: string }} [o] size of each chart; default 560 x 360
 */
export function svgDocument(charts, o = {}) {
  const width = o.width ?? 560;
  const height = o.height ?? 360;
  const captionHeight = o.caption ? 22 : 0;
  const total = width * charts.length;
  const s = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${total}" height="${height + captionHeight}" viewBox="0 0 ${total} ${height + captionHeight}" font-family="${FONT}" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    ...charts.map((c, i) => chartGroup(c, { left: i * width, top: 0, width, height })),
  ];
  if (o.caption) s.push(`<text x="10" y="${height + 14}" fill="#555">${esc(o.caption)}</text>`);
  s.push("</svg>");
  return `${s.join("\n")}\n`;
}
