// The click heat map: where the clicks of one page were made, in percent of the viewport
// (tracker.js sends x/y, the WebSocket clients loc_x/loc_y). Each click adds a soft spot of
// heat; the summed heat is coloured from blue (a few clicks) through green and yellow to red
// (the most clicked place). The canvas keeps the viewport's shape (the clicks' median
// width/height) and carries what it shows in data-* attributes (clicks, points).
"use strict";

const STOPS = [[0, "rgba(0,0,255,0)"], [0.2, "#2050ff"], [0.45, "#00c8c8"], [0.65, "#30d030"], [0.85, "#ffe000"], [1, "#ff2000"]];
const DEFAULT_RATIO = 10 / 16; // height / width when the clicks do not say

let palette = null; // 256 RGBA colours, made once

function colours() {
  if (palette) return palette;
  const canvas = document.createElement("canvas");
  canvas.width = 256;
  canvas.height = 1;
  const ctx = canvas.getContext("2d");
  const gradient = ctx.createLinearGradient(0, 0, 256, 0);
  for (const [at, colour] of STOPS) gradient.addColorStop(at, colour);
  ctx.fillStyle = gradient;
  ctx.fillRect(0, 0, 256, 1);
  palette = ctx.getImageData(0, 0, 256, 1).data;
  return palette;
}

function cssColour(canvas, name) {
  canvas.style.color = "var(--" + name + ")";
  return getComputedStyle(canvas).color;
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length ? sorted[Math.floor(sorted.length / 2)] : NaN;
};

/** The viewport's shape (height / width) the clicks were made in. */
export function viewportRatio(clicks) {
  const ratios = clicks.filter((c) => c.w > 0 && c.h > 0).map((c) => c.h / c.w);
  const ratio = median(ratios);
  return Number.isFinite(ratio) ? Math.min(2.2, Math.max(0.4, ratio)) : DEFAULT_RATIO;
}

/**
 * Draw `clicks` (`[{x, y, w?, h?}]`, x/y in percent) on `canvas`, as wide as its box: a grid
 * every 10 %, the heat, and a dot per click when there are few.
 */
export function drawHeatmap(canvas, clicks) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 300;
  const height = Math.round(width * viewportRatio(clicks));
  canvas.style.height = height + "px";
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const W = canvas.width, H = canvas.height;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = cssColour(canvas, "panel");
  ctx.fillRect(0, 0, W, H);
  ctx.strokeStyle = cssColour(canvas, "line");
  ctx.lineWidth = 1;
  for (let i = 1; i < 10; i += 1) {
    const x = Math.round((W * i) / 10) + 0.5, y = Math.round((H * i) / 10) + 0.5;
    ctx.beginPath();
    ctx.moveTo(x, 0);
    ctx.lineTo(x, H);
    ctx.moveTo(0, y);
    ctx.lineTo(W, y);
    ctx.stroke();
  }
  canvas.dataset.clicks = String(clicks.length);
  canvas.dataset.points = clicks.slice(0, 100).map((c) => c.x + "," + c.y).join(" ");
  if (!clicks.length) {
    ctx.fillStyle = cssColour(canvas, "muted");
    ctx.font = 11 * ratio + "px system-ui, sans-serif";
    ctx.fillText("No clicks", 8 * ratio, 18 * ratio);
    return;
  }
  // Heat: soft alpha spots summed on their own layer, then coloured by the palette.
  const layer = document.createElement("canvas");
  layer.width = W;
  layer.height = H;
  const heat = layer.getContext("2d");
  const radius = Math.max(10 * ratio, W * 0.04);
  const alpha = Math.min(0.5, Math.max(0.06, 2 / Math.sqrt(clicks.length)));
  for (const c of clicks) {
    const x = (c.x / 100) * W, y = (c.y / 100) * H;
    const spot = heat.createRadialGradient(x, y, 0, x, y, radius);
    spot.addColorStop(0, "rgba(0,0,0," + alpha + ")");
    spot.addColorStop(1, "rgba(0,0,0,0)");
    heat.fillStyle = spot;
    heat.fillRect(x - radius, y - radius, radius * 2, radius * 2);
  }
  const image = heat.getImageData(0, 0, W, H);
  const pixels = image.data, map = colours();
  let peak = 0;
  for (let i = 3; i < pixels.length; i += 4) peak = Math.max(peak, pixels[i]);
  for (let i = 0; i < pixels.length; i += 4) {
    const level = pixels[i + 3];
    if (!level) continue;
    const at = Math.min(255, Math.round((level / peak) * 255)) * 4;
    pixels[i] = map[at];
    pixels[i + 1] = map[at + 1];
    pixels[i + 2] = map[at + 2];
    pixels[i + 3] = Math.min(230, 60 + map[at + 3]);
  }
  heat.putImageData(image, 0, 0);
  ctx.drawImage(layer, 0, 0);
  if (clicks.length <= 200) {
    ctx.fillStyle = cssColour(canvas, "fg");
    for (const c of clicks) ctx.fillRect((c.x / 100) * W - ratio, (c.y / 100) * H - ratio, 2 * ratio, 2 * ratio);
  }
}
