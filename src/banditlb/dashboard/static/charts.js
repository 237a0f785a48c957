// Small canvas charts: lines with bands, grouped bars, histograms. No library, no build step.

export const PALETTE = ["#2f6fde", "#e8710a", "#1a7f37", "#c62828", "#7b3fbf", "#8c564b",
  "#d6338a", "#5f6b7a", "#9aa31a", "#12a3b8"];
export const color = (i) => PALETTE[((i % PALETTE.length) + PALETTE.length) % PALETTE.length];

const FONT = "11px system-ui, sans-serif";
const INK = "#1d2330";
const MUTED = "#667085";
const GRID = "#eceff3";
const MARGIN = { left: 56, right: 14, top: 30, bottom: 40 };

window.addEventListener("resize", () => {
  for (const canvas of document.querySelectorAll("canvas")) canvas.redraw?.();
});

/** Size the canvas to its CSS box at the screen's pixel ratio; white background (for PNGs). */
function prepare(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 600;
  const h = canvas.clientHeight || 260;
  if (canvas.width !== Math.round(w * ratio) || canvas.height !== Math.round(h * ratio)) {
    canvas.width = Math.round(w * ratio);
    canvas.height = Math.round(h * ratio);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, w, h);
  ctx.font = FONT;
  return { ctx, w, h };
}

/** About `count` round tick values covering [min, max]. */
export function niceTicks(min, max, count = 5) {
  if (!(max > min)) return [min];
  const raw = (max - min) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw);
  const ticks = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) {
    ticks.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  }
  return ticks;
}

function shortNumber(v) {
  const a = Math.abs(v);
  if (a >= 1e6) return `${+(v / 1e6).toFixed(1)}M`;
  if (a >= 1e4) return `${+(v / 1e3).toFixed(1)}k`;
  if (a >= 100 || Number.isInteger(v)) return String(Math.round(v));
  return String(+v.toPrecision(3));
}

function fitText(ctx, text, width) {
  if (ctx.measureText(text).width <= width) return text;
  let cut = text;
  while (cut.length > 1 && ctx.measureText(`${cut}…`).width > width) cut = cut.slice(0, -1);
  return `${cut}…`;
}

function emptyMessage(ctx, w, h, text) {
  ctx.fillStyle = MUTED;
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  ctx.fillText(text, w / 2, h / 2);
}

function legend(ctx, items, w) {
  let x = MARGIN.left;
  const y = 12;
  ctx.textBaseline = "middle";
  ctx.textAlign = "left";
  for (const item of items) {
    const width = ctx.measureText(item.label).width + 26;
    if (x + width > w - MARGIN.right && x > MARGIN.left) break;
    ctx.strokeStyle = item.color;
    ctx.fillStyle = item.color;
    ctx.lineWidth = 2;
    ctx.setLineDash(item.dashed ? [4, 3] : []);
    ctx.beginPath();
    ctx.moveTo(x, y);
    ctx.lineTo(x + 16, y);
    ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = INK;
    ctx.fillText(item.label, x + 20, y);
    x += width;
  }
}

/** Axes, grid and labels; returns the data -> pixel mappings. */
function frame(ctx, w, h, box) {
  const { xMin, xMax, yMin, yMax } = box;
  const left = MARGIN.left;
  const right = w - MARGIN.right;
  const top = MARGIN.top;
  const bottom = h - MARGIN.bottom;
  const x = (v) => left + ((v - xMin) / (xMax - xMin || 1)) * (right - left);
  const y = (v) => bottom - ((v - yMin) / (yMax - yMin || 1)) * (bottom - top);
  ctx.lineWidth = 1;
  ctx.textBaseline = "middle";
  ctx.textAlign = "right";
  for (const t of niceTicks(yMin, yMax)) {
    ctx.strokeStyle = t === 0 ? "#c8cfda" : GRID;
    ctx.beginPath();
    ctx.moveTo(left, y(t));
    ctx.lineTo(right, y(t));
    ctx.stroke();
    ctx.fillStyle = MUTED;
    ctx.fillText((box.yFormat || shortNumber)(t), left - 6, y(t));
  }
  if (box.xTicks !== false) {
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (const t of niceTicks(xMin, xMax, Math.max(2, Math.floor((right - left) / 80)))) {
      ctx.fillStyle = MUTED;
      ctx.fillText((box.xFormat || shortNumber)(t), x(t), bottom + 5);
    }
  }
  ctx.strokeStyle = "#9aa3b2";
  ctx.beginPath();
  ctx.moveTo(left, top);
  ctx.lineTo(left, bottom);
  ctx.lineTo(right, bottom);
  ctx.stroke();
  ctx.fillStyle = MUTED;
  if (box.xLabel) {
    ctx.textAlign = "center";
    ctx.textBaseline = "bottom";
    ctx.fillText(box.xLabel, (left + right) / 2, h - 2);
  }
  if (box.yLabel) {
    ctx.save();
    ctx.translate(12, (top + bottom) / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    ctx.fillText(box.yLabel, 0, 0);
    ctx.restore();
  }
  return { x, y, left, right, top, bottom };
}

function extent(values, fallbackMin, fallbackMax) {
  let min = Infinity;
  let max = -Infinity;
  for (const v of values) {
    if (Number.isFinite(v)) {
      min = Math.min(min, v);
      max = Math.max(max, v);
    }
  }
  if (min === Infinity) return [fallbackMin, fallbackMax];
  if (min === max) return [min - 1, max + 1];
  return [min, max];
}

/**
 * Lines over x, each with an optional band (e.g. a confidence interval).
 * series: [{label, color, points: [[x, y]], band: [[x, lo, hi]], dashed}]
 * markers: [{x, color, label}] vertical dashed lines (e.g. a true value).
 */
export function lineChart(canvas, opts) {
  canvas.redraw = () => lineChart(canvas, opts);
  const { ctx, w, h } = prepare(canvas);
  const series = opts.series.filter((s) => s.points.length);
  if (!series.length) {
    emptyMessage(ctx, w, h, opts.empty || "no data yet");
    return;
  }
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => [...s.points.map((p) => p[1]),
    ...(s.band || []).flatMap((b) => [b[1], b[2]])]);
  const [x0, x1] = extent(xs, 0, 1);
  const [y0, y1] = extent(ys, 0, 1);
  const box = {
    ...opts,
    xMin: opts.xMin ?? x0, xMax: opts.xMax ?? x1,
    yMin: opts.yMin ?? y0, yMax: opts.yMax ?? (y1 + (y1 - y0) * 0.05),
  };
  const f = frame(ctx, w, h, box);
  ctx.save();
  ctx.beginPath();
  ctx.rect(f.left, f.top - 1, f.right - f.left, f.bottom - f.top + 2);
  ctx.clip();
  for (const s of series) {
    if (!s.band || !s.band.length) continue;
    ctx.fillStyle = s.color;
    ctx.globalAlpha = 0.15;
    ctx.beginPath();
    s.band.forEach((b, i) => (i ? ctx.lineTo(f.x(b[0]), f.y(b[2])) : ctx.moveTo(f.x(b[0]), f.y(b[2]))));
    for (let i = s.band.length - 1; i >= 0; i -= 1) ctx.lineTo(f.x(s.band[i][0]), f.y(s.band[i][1]));
    ctx.closePath();
    ctx.fill();
    ctx.globalAlpha = 1;
  }
  for (const m of opts.markers || []) {
    ctx.strokeStyle = m.color;
    ctx.lineWidth = 1.5;
    ctx.setLineDash([5, 4]);
    ctx.beginPath();
    ctx.moveTo(f.x(m.x), f.top);
    ctx.lineTo(f.x(m.x), f.bottom);
    ctx.stroke();
  }
  ctx.setLineDash([]);
  for (const s of series) {
    ctx.strokeStyle = s.color;
    ctx.lineWidth = s.width || 2;
    ctx.setLineDash(s.dashed ? [6, 4] : []);
    ctx.beginPath();
    let pen = false;
    for (const [px, py] of s.points) {
      if (!Number.isFinite(py)) { pen = false; continue; }
      if (pen) ctx.lineTo(f.x(px), f.y(py));
      else ctx.moveTo(f.x(px), f.y(py));
      pen = true;
    }
    ctx.stroke();
  }
  ctx.restore();
  legend(ctx, series.map((s) => ({ label: s.label, color: s.color, dashed: s.dashed })), w);
}

/**
 * Bars side by side per group. groups: [label]; series: [{label, color, values: [v|null],
 * errors: [halfWidth|null]}] (errors optional, drawn as whiskers).
 */
export function groupedBars(canvas, opts) {
  canvas.redraw = () => groupedBars(canvas, opts);
  const { ctx, w, h } = prepare(canvas);
  const values = opts.series.flatMap((s) => s.values.map((v, i) => [v, s.errors?.[i] || 0]));
  const finite = values.filter(([v]) => Number.isFinite(v));
  if (!opts.groups.length || !finite.length) {
    emptyMessage(ctx, w, h, opts.empty || "no data yet");
    return;
  }
  const lo = Math.min(0, ...finite.map(([v, e]) => v - e));
  const hi = Math.max(0, ...finite.map(([v, e]) => v + e));
  const box = { ...opts, xMin: 0, xMax: 1, yMin: opts.yMin ?? lo,
    yMax: opts.yMax ?? (hi + (hi - lo) * 0.08 || 1), xTicks: false };
  const f = frame(ctx, w, h, box);
  const bandWidth = (f.right - f.left) / opts.groups.length;
  const barWidth = Math.max(2, (bandWidth * 0.8) / opts.series.length);
  const zero = f.y(Math.max(box.yMin, Math.min(box.yMax, 0)));
  opts.groups.forEach((group, g) => {
    const start = f.left + g * bandWidth + bandWidth * 0.1;
    opts.series.forEach((s, k) => {
      const v = s.values[g];
      if (!Number.isFinite(v)) return;
      const x = start + k * barWidth;
      ctx.fillStyle = s.color;
      ctx.fillRect(x + 1, Math.min(zero, f.y(v)), barWidth - 2, Math.abs(f.y(v) - zero));
      const err = s.errors?.[g];
      if (Number.isFinite(err) && err > 0) {
        ctx.strokeStyle = INK;
        ctx.lineWidth = 1;
        const cx = x + barWidth / 2;
        ctx.beginPath();
        ctx.moveTo(cx, f.y(v - err));
        ctx.lineTo(cx, f.y(v + err));
        ctx.moveTo(cx - 3, f.y(v - err));
        ctx.lineTo(cx + 3, f.y(v - err));
        ctx.moveTo(cx - 3, f.y(v + err));
        ctx.lineTo(cx + 3, f.y(v + err));
        ctx.stroke();
      }
    });
    ctx.fillStyle = INK;
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    ctx.fillText(fitText(ctx, String(group), bandWidth - 4), f.left + (g + 0.5) * bandWidth,
      f.bottom + 5);
  });
  legend(ctx, opts.series.map((s) => ({ label: s.label, color: s.color })), w);
}

/** Counts per bin, bins of equal drawn width. bins: [{label, count}] */
export function histogram(canvas, opts) {
  canvas.redraw = () => histogram(canvas, opts);
  const { ctx, w, h } = prepare(canvas);
  const total = opts.bins.reduce((sum, b) => sum + b.count, 0);
  if (!total) {
    emptyMessage(ctx, w, h, opts.empty || "no data yet");
    return;
  }
  const top = Math.max(...opts.bins.map((b) => b.count));
  const f = frame(ctx, w, h, { ...opts, xMin: 0, xMax: 1, yMin: 0, yMax: top * 1.08,
    xTicks: false });
  const width = (f.right - f.left) / opts.bins.length;
  const every = Math.max(1, Math.ceil(opts.bins.length / Math.floor((f.right - f.left) / 46)));
  opts.bins.forEach((b, i) => {
    ctx.fillStyle = opts.color || PALETTE[0];
    ctx.fillRect(f.left + i * width + 0.5, f.y(b.count), Math.max(1, width - 1),
      f.bottom - f.y(b.count));
    if (i % every === 0) {
      ctx.fillStyle = MUTED;
      ctx.textAlign = "center";
      ctx.textBaseline = "top";
      ctx.fillText(b.label, f.left + (i + 0.5) * width, f.bottom + 5);
    }
  });
  if (opts.title) legend(ctx, [{ label: opts.title, color: opts.color || PALETTE[0] }], w);
}

/** A button that saves the canvas as a PNG file. */
export function pngButton(canvas, filename) {
  const button = document.createElement("button");
  button.className = "small";
  button.type = "button";
  button.textContent = "PNG";
  button.title = "Save this chart as a PNG image";
  button.addEventListener("click", () => {
    const link = document.createElement("a");
    link.href = canvas.toDataURL("image/png");
    link.download = `${filename}.png`;
    link.click();
  });
  return button;
}
