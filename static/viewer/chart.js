// The histogram: records per level over a linear time axis, from GET /api/stats.
//
// The x axis is time itself: a bucket is drawn where its time is, and a bucket without records
// is a gap, not a missing bar. Hovering shows a bucket's counts; dragging across the chart
// selects a range, which `onZoom(fromMs, toMs)` turns into the since/until filter.
//
// The series are the log levels unless the data names its own (`kinds`, with the CSS colour
// variable of each in `colours`, and the `unit` counted): the Events tab's charts.
"use strict";

import { DAY, HOUR, MINUTE, format, offsetMinutes } from "./times.js";

export const KINDS = ["debug", "info", "warning", "error", "critical"];
export const BUCKET_MS = { minute: MINUTE, hour: HOUR, day: DAY };
const TICK_STEPS = [
  MINUTE, 2 * MINUTE, 5 * MINUTE, 10 * MINUTE, 15 * MINUTE, 30 * MINUTE,
  HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY, 14 * DAY, 28 * DAY,
  91 * DAY, 182 * DAY, 364 * DAY,
];
const PAD = { left: 6, right: 6, top: 16, bottom: 18 };
const DRAG_PX = 5;

export const levelKind = (level) =>
  level >= 50 ? "critical" : level >= 40 ? "error" : level >= 30 ? "warning" : level >= 20 ? "info" : "debug";

/** The resolved colour of CSS custom property `--name` (light or dark theme). */
function cssColour(probe, name) {
  probe.style.color = "var(--" + name + ")";
  return getComputedStyle(probe).color;
}

/**
 * A chart on `canvas`; `tip` is the hover box, `band` the drag selection, `hover` the hovered
 * bucket's outline (all absolutely positioned inside the canvas's parent).
 */
export function createChart({ canvas, tip, band, hover, onZoom, empty = "No records" }) {
  let data = null; // {from, to, bucket, bucketMs, bars: Map(startMs -> {kind: count}), kinds?, colours?, unit?}
  const kindsOf = () => data.kinds || KINDS;
  let drag = null;

  const plot = () => ({ x: PAD.left, w: canvas.clientWidth - PAD.left - PAD.right });
  const xOf = (ms) => { const p = plot(); return p.x + ((ms - data.from) / (data.to - data.from)) * p.w; };
  const timeAt = (x) => { const p = plot(); return data.from + ((x - p.x) / p.w) * (data.to - data.from); };
  const localX = (event) => event.clientX - canvas.getBoundingClientRect().left;

  function ticks(width) {
    const span = data.to - data.from;
    const step = TICK_STEPS.find((s) => span / s <= width / 120) || TICK_STEPS[TICK_STEPS.length - 1];
    const offset = offsetMinutes(data.from) * MINUTE; // ticks on the display zone's round times
    const out = [];
    for (let t = Math.ceil((data.from + offset) / step) * step - offset; t <= data.to; t += step) out.push(t);
    return { step, out };
  }

  function draw() {
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth, height = canvas.clientHeight;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    const ctx = canvas.getContext("2d");
    ctx.scale(ratio, ratio);
    ctx.clearRect(0, 0, width, height);
    const muted = cssColour(canvas, "muted"), line = cssColour(canvas, "line");
    ctx.font = "11px system-ui, sans-serif";
    ctx.fillStyle = muted;
    if (!data || !data.bars.size) {
      ctx.fillText(empty, PAD.left + 4, 20);
      return;
    }
    const bottom = height - PAD.bottom, plotHeight = bottom - PAD.top;
    const kinds = kindsOf();
    const totals = [...data.bars.values()].map((bar) => kinds.reduce((sum, k) => sum + (bar[k] || 0), 0));
    const max = Math.max(...totals);
    // Grid and time labels.
    const { step, out } = ticks(width);
    ctx.strokeStyle = line;
    ctx.lineWidth = 1;
    let lastDay = null;
    for (const t of out) {
      const x = Math.round(xOf(t)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(x, PAD.top);
      ctx.lineTo(x, bottom);
      ctx.stroke();
      const day = format(t, "day");
      const label = step >= DAY ? day : day !== lastDay ? format(t, "minute") : format(t, "minute").slice(11);
      lastDay = day;
      const w = ctx.measureText(label).width;
      ctx.fillText(label, Math.min(Math.max(x - w / 2, 0), width - w), height - 4);
    }
    ctx.beginPath();
    ctx.moveTo(PAD.left, bottom + 0.5);
    ctx.lineTo(width - PAD.right, bottom + 0.5);
    ctx.stroke();
    // Bars: each at its own time, as wide as its bucket (a 1 px gap between neighbours).
    const colours = Object.fromEntries(kinds.map((k) => [k, cssColour(canvas, data.colours?.[k] || k)]));
    for (const [start, bar] of data.bars) {
      const x0 = xOf(start), x1 = xOf(start + data.bucketMs);
      const left = Math.max(PAD.left, x0), right = Math.min(width - PAD.right, x1);
      if (right <= left) continue;
      const barWidth = Math.max(1, right - left - (right - left > 3 ? 1 : 0));
      let y = bottom;
      for (const kind of kinds) {
        const count = bar[kind] || 0;
        if (!count) continue;
        const h = Math.max(1, (count / max) * plotHeight);
        ctx.fillStyle = colours[kind];
        ctx.fillRect(left, y - h, barWidth, h);
        y -= h;
      }
    }
    ctx.fillStyle = muted;
    ctx.fillText("max " + max.toLocaleString("en") + " per " + data.bucket, PAD.left, 11);
  }

  /** The bucket under x, with its counts (zero for a gap). */
  function bucketAt(x) {
    const t = timeAt(x);
    if (!data || t < data.from || t > data.to) return null;
    const start = Math.floor(t / data.bucketMs) * data.bucketMs;
    return { start, bar: data.bars.get(start) || {} };
  }

  function showTip(event) {
    const x = localX(event);
    const hit = data && data.bars.size ? bucketAt(x) : null;
    if (!hit || drag) { tip.hidden = hover.hidden = true; return; }
    const total = kindsOf().reduce((sum, k) => sum + (hit.bar[k] || 0), 0);
    const unit = data.bucket === "day" ? "day" : "minute";
    const detail = kindsOf().filter((k) => hit.bar[k]).map((k) => k + " " + hit.bar[k].toLocaleString("en"));
    tip.textContent = "";
    const head = document.createElement("strong");
    const counted = data.unit || "record";
    head.textContent = total.toLocaleString("en") + " " + counted + (total === 1 ? "" : "s");
    const when = document.createElement("div");
    when.textContent = format(hit.start, unit) + " – " + format(hit.start + data.bucketMs, unit);
    tip.append(head, when);
    if (detail.length) {
      const levels = document.createElement("div");
      levels.textContent = detail.join(", ");
      tip.append(levels);
    }
    tip.hidden = false;
    const box = canvas.parentElement.clientWidth;
    tip.style.left = Math.min(Math.max(0, canvas.offsetLeft + x + 12), box - tip.offsetWidth) + "px";
    tip.style.top = canvas.offsetTop + 4 + "px";
    const x0 = Math.max(PAD.left, xOf(hit.start)), x1 = Math.min(canvas.clientWidth - PAD.right, xOf(hit.start + data.bucketMs));
    hover.hidden = false;
    hover.style.left = canvas.offsetLeft + x0 + "px";
    hover.style.width = Math.max(1, x1 - x0) + "px";
    hover.style.top = canvas.offsetTop + PAD.top + "px";
    hover.style.height = canvas.clientHeight - PAD.top - PAD.bottom + "px";
  }

  canvas.addEventListener("pointermove", (event) => {
    if (drag) {
      drag.x1 = Math.min(Math.max(localX(event), PAD.left), canvas.clientWidth - PAD.right);
      const left = Math.min(drag.x0, drag.x1), right = Math.max(drag.x0, drag.x1);
      band.hidden = right - left < DRAG_PX;
      band.style.left = canvas.offsetLeft + left + "px";
      band.style.width = right - left + "px";
      band.style.top = canvas.offsetTop + "px";
      band.style.height = canvas.clientHeight + "px";
    }
    showTip(event);
  });
  canvas.addEventListener("pointerleave", () => { if (!drag) tip.hidden = hover.hidden = true; });
  canvas.addEventListener("pointerdown", (event) => {
    if (!data || !data.bars.size || event.button !== 0) return;
    drag = { x0: localX(event), x1: localX(event) };
    canvas.setPointerCapture(event.pointerId);
    tip.hidden = hover.hidden = true;
  });
  const endDrag = (event, cancelled) => {
    if (!drag) return;
    const { x0, x1 } = drag;
    drag = null;
    band.hidden = true;
    if (cancelled || Math.abs(x1 - x0) < DRAG_PX) return;
    // Whole buckets: the selection snaps outwards to the buckets it touches.
    const from = Math.floor(timeAt(Math.min(x0, x1)) / data.bucketMs) * data.bucketMs;
    const to = Math.ceil(timeAt(Math.max(x0, x1)) / data.bucketMs) * data.bucketMs;
    onZoom(from, to);
    showTip(event);
  };
  canvas.addEventListener("pointerup", (event) => endDrag(event, false));
  canvas.addEventListener("pointercancel", (event) => endDrag(event, true));

  return {
    /** Draw `next` (or redraw the current data, e.g. after a resize or a theme change). */
    render(next) {
      if (next !== undefined) data = next;
      tip.hidden = hover.hidden = true;
      canvas.dataset.bucket = data ? data.bucket : "";
      canvas.dataset.bars = String(data ? data.bars.size : 0);
      canvas.dataset.buckets = data ? String(Math.ceil((data.to - data.from) / data.bucketMs)) : "0";
      canvas.dataset.from = data ? new Date(data.from).toISOString() : "";
      canvas.dataset.to = data ? new Date(data.to).toISOString() : "";
      draw();
    },
  };
}
