// Small DOM and SVG helpers shared by the pages. Text always goes in through textContent.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k in el && k !== "list") el[k] = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

export const num = (x, digits = 3) => (x === null || x === undefined || Number.isNaN(x) ? "–" : Number(x).toFixed(digits));
export const pct = (x) => (x === null || x === undefined ? "–" : `${(100 * x).toFixed(1)}%`);
export const when = (iso) => (iso ? new Date(iso).toLocaleString() : "–");
export const interval = (ci) => (Array.isArray(ci) ? `[${num(ci[0])}, ${num(ci[1])}]` : "–");

export function badge(text, kind = "") {
  return h("span", { class: `badge ${kind}` }, text);
}

export function errorBox(err, retry) {
  return h("div", { class: "error", role: "alert" },
    h("strong", {}, err.status ? `Error ${err.status}: ` : "Error: "), String(err.message || err),
    retry ? h("button", { class: "link", onclick: retry }, "try again") : null);
}

export function note(text) {
  return h("p", { class: "note" }, text);
}

// Fill `container` with what `load()` builds; a spinner meanwhile and a readable error on failure.
export async function show(container, load) {
  container.replaceChildren(h("p", { class: "loading" }, "loading…"));
  try {
    const content = await load();
    container.replaceChildren(...[content].flat().filter(Boolean));
  } catch (err) {
    container.replaceChildren(errorBox(err, () => show(container, load)));
  }
}

export function table(headers, rows, attrs = {}) {
  return h("table", attrs,
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", {}, x)))),
    h("tbody", {}, rows));
}

// A horizontal bar on a fixed 0..1 scale, so bars on one page compare at a glance.
export function probabilityBar(p, label) {
  return h("div", { class: "pbar", title: label || num(p) },
    h("div", { class: "fill", style: `width:${Math.max(0, Math.min(1, p)) * 100}%` }),
    h("span", { class: "value" }, num(p)));
}

const SVG = "http://www.w3.org/2000/svg";
function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  for (const c of children.flat()) if (c) el.append(typeof c === "string" ? document.createTextNode(c) : c);
  return el;
}

// Points with 95% intervals, one row per item: [{label, value, lo?, hi?, highlight?}], x in [min, max].
export function intervalChart(items, { min = 0, max = 1, title = "" } = {}) {
  const rowH = 24, left = 170, width = 560, top = title ? 26 : 8, plotW = width - left - 20;
  const height = top + items.length * rowH + 26;
  const x = (v) => left + ((v - min) / (max - min || 1)) * plotW;
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img", "aria-label": title });
  if (title) svg.append(s("text", { x: 4, y: 16, class: "title" }, title));
  for (let t = 0; t <= 4; t++) {
    const v = min + (t / 4) * (max - min), xx = x(v);
    svg.append(s("line", { x1: xx, x2: xx, y1: top, y2: height - 22, class: "grid" }),
      s("text", { x: xx, y: height - 8, "text-anchor": "middle", class: "tick" }, num(v, 2)));
  }
  items.forEach((it, i) => {
    const y = top + i * rowH + rowH / 2;
    svg.append(s("text", { x: left - 8, y: y + 4, "text-anchor": "end", class: "label" }, it.label));
    if (it.lo !== undefined && it.lo !== null) {
      svg.append(s("line", { x1: x(it.lo), x2: x(it.hi), y1: y, y2: y, class: "ci" }),
        s("line", { x1: x(it.lo), x2: x(it.lo), y1: y - 5, y2: y + 5, class: "ci" }),
        s("line", { x1: x(it.hi), x2: x(it.hi), y1: y - 5, y2: y + 5, class: "ci" }));
    }
    if (it.value !== null && it.value !== undefined) {
      svg.append(s("circle", { cx: x(it.value), cy: y, r: 5, class: it.highlight ? "dot hi" : "dot" },
        s("title", {}, `${it.label}: ${num(it.value)}`)));
    }
  });
  return svg;
}

// Lines over a numeric x axis: [{name, points: [[x, y], ...]}]; y in [ymin, ymax].
export function lineChart(series, { title = "", xLabel = "", ymin = 0, ymax = 1, xTicks, xFormat = String } = {}) {
  const width = 560, height = 240, left = 44, right = 130, top = 24, bottom = 34;
  const xs = series.flatMap((se) => se.points.map((p) => p[0]));
  const x0 = Math.min(...xs), x1 = Math.max(...xs);
  const x = (v) => left + ((v - x0) / (x1 - x0 || 1)) * (width - left - right);
  const y = (v) => top + (1 - (v - ymin) / (ymax - ymin || 1)) * (height - top - bottom);
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img", "aria-label": title });
  svg.append(s("text", { x: 4, y: 14, class: "title" }, title));
  for (let t = 0; t <= 4; t++) {
    const v = ymin + (t / 4) * (ymax - ymin);
    svg.append(s("line", { x1: left, x2: width - right, y1: y(v), y2: y(v), class: "grid" }),
      s("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end", class: "tick" }, num(v, 2)));
  }
  for (const v of xTicks || [...new Set(xs)]) {
    svg.append(s("text", { x: x(v), y: height - 18, "text-anchor": "middle", class: "tick" }, xFormat(v)));
  }
  svg.append(s("text", { x: (left + width - right) / 2, y: height - 2, "text-anchor": "middle", class: "tick" }, xLabel));
  // Drawn last-first, so the first series (the one the chart is about) lies on top.
  [...series.entries()].reverse().forEach(([i, se]) => {
    const cls = `series s${i % 6}`;
    const pts = se.points.map(([a, b]) => `${x(a)},${y(b)}`).join(" ");
    svg.append(s("polyline", { points: pts, class: cls }));
    for (const [a, b] of se.points) svg.append(s("circle", { cx: x(a), cy: y(b), r: 3, class: cls },
      s("title", {}, `${se.name}: ${num(b)} at ${xFormat(a)}`)));
    svg.append(s("text", { x: width - right + 8, y: top + 14 * i + 8, class: `legend ${cls}` }, se.name));
  });
  return svg;
}
