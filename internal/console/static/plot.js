// plot.js draws small SVG charts in the page (no library): a line chart of
// counts over time by series, and horizontal bars.

const NS = "http://www.w3.org/2000/svg";

function svgEl(tag, attrs, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

export const colors = { allow: "#1e7b34", deny: "#b3261e", escalate: "#a26100", trust: "#2456c8" };
const palette = ["#2456c8", "#7b2cbf", "#0f766e", "#c2410c", "#be185d", "#4d7c0f", "#475569"];

// lineChart: series is {name: [[x (ms), y], …]}; returns an <svg>.
export function lineChart(series, { width = 640, height = 200, yLabel = "" } = {}) {
  const pad = { l: 40, r: 12, t: 12, b: 24 };
  const svg = svgEl("svg", { class: "plot", width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
  const pts = Object.values(series).flat();
  if (pts.length === 0) {
    svg.appendChild(svgEl("text", { x: width / 2 - 30, y: height / 2 }, "no data yet"));
    return svg;
  }
  let x0 = Math.min(...pts.map((p) => p[0])), x1 = Math.max(...pts.map((p) => p[0]));
  if (x1 === x0) { x0 -= 30000; x1 += 30000; }
  const y1 = Math.max(1, ...pts.map((p) => p[1]));
  const X = (x) => pad.l + ((x - x0) / (x1 - x0)) * (width - pad.l - pad.r);
  const Y = (y) => height - pad.b - (y / y1) * (height - pad.t - pad.b);
  svg.appendChild(svgEl("line", { x1: pad.l, y1: Y(0), x2: width - pad.r, y2: Y(0), stroke: "#d9dee8" }));
  svg.appendChild(svgEl("line", { x1: pad.l, y1: pad.t, x2: pad.l, y2: Y(0), stroke: "#d9dee8" }));
  svg.appendChild(svgEl("text", { x: 4, y: pad.t + 8 }, String(y1)));
  svg.appendChild(svgEl("text", { x: 4, y: Y(0) }, "0"));
  if (yLabel) svg.appendChild(svgEl("text", { x: pad.l + 4, y: pad.t + 8 }, yLabel));
  svg.appendChild(svgEl("text", { x: pad.l, y: height - 6 }, new Date(x0).toLocaleTimeString()));
  svg.appendChild(svgEl("text", { x: width - pad.r - 60, y: height - 6 }, new Date(x1).toLocaleTimeString()));
  let legendX = width - pad.r;
  Object.keys(series).forEach((name, i) => {
    if (colors[name]) return;
    const t = svgEl("text", { y: pad.t + 8, "text-anchor": "end", fill: palette[i % palette.length] }, name);
    t.setAttribute("x", String(legendX));
    legendX -= 8 + 7 * name.length;
    svg.appendChild(t);
  });
  Object.entries(series).forEach(([name, ps], i) => {
    if (ps.length === 0) return;
    const d = ps.map((p, i) => `${i ? "L" : "M"}${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join(" ");
    const color = colors[name] || palette[i % palette.length];
    svg.appendChild(svgEl("path", { d, fill: "none", stroke: color, "stroke-width": 2, "data-series": name }));
    for (const p of ps) svg.appendChild(svgEl("circle", { cx: X(p[0]), cy: Y(p[1]), r: 2.5, fill: color }));
  });
  return svg;
}

// barChart: rows is [{label, value, max}]; each bar shows value against max.
export function barChart(rows, { width = 640 } = {}) {
  const h = 22, pad = 160;
  const height = Math.max(h, rows.length * h + 8);
  const svg = svgEl("svg", { class: "plot", width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
  if (rows.length === 0) {
    svg.appendChild(svgEl("text", { x: 8, y: 15 }, "no budget charged yet"));
    return svg;
  }
  const top = Math.max(1, ...rows.map((r) => r.max || r.value));
  rows.forEach((r, i) => {
    const y = 4 + i * h;
    const w = ((width - pad - 60) * r.value) / top;
    svg.appendChild(svgEl("text", { x: 6, y: y + 14 }, r.label));
    svg.appendChild(svgEl("rect", { x: pad, y: y + 3, width: Math.max(1, w), height: h - 8, fill: colors.trust, "data-bar": r.label }));
    svg.appendChild(svgEl("text", { x: pad + w + 6, y: y + 14 }, r.max ? `${r.value} / ${r.max}` : String(r.value)));
  });
  return svg;
}
