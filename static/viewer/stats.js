// The chart's data: which buckets to ask GET /api/stats for, the total count of matches, and
// the legend. A time range (quick or typed) is drawn from its start to its end (now when
// open); "all" is drawn from the first record to the last.
"use strict";

import { BUCKET_MS, KINDS, createChart, levelKind } from "./chart.js";
import { api } from "./net.js";
import { DAY, HOUR, parseWire, toWire } from "./times.js";
import { apiParams } from "./view.js";

const $ = (id) => document.getElementById(id);

/** The bucket that draws `spanMs` in a few hundred bars at most. */
export const autoBucket = (spanMs) => (spanMs <= 6 * HOUR ? "minute" : spanMs <= 14 * DAY ? "hour" : "day");

/** `{bars: Map(startMs -> {kind: count}), total, first, last}` of a stats answer. */
function collect(body) {
  const bars = new Map();
  let total = 0, first = Infinity, last = -Infinity;
  for (const c of body.counts) {
    const start = parseWire(c.start);
    const kind = levelKind(c.level);
    if (!bars.has(start)) bars.set(start, {});
    const bar = bars.get(start);
    bar[kind] = (bar[kind] || 0) + c.count;
    total += c.count;
    first = Math.min(first, start);
    last = Math.max(last, start);
  }
  return { bars, total, first, last, partial: Boolean(body.partial) };
}

/** The histogram, its total and its legend; `onZoom(fromMs, toMs)` when a range is dragged. */
export function createStats({ headers, onZoom }) {
  const chart = createChart({ canvas: $("histogram"), tip: $("chart-tip"), band: $("chart-band"), hover: $("chart-hover"), onZoom });

  async function fetchStats(params, bucket, signal) {
    return collect(await api("/api/stats", { ...params, bucket }, { headers: headers(), signal }));
  }

  function show(total, partial, kinds) {
    $("total").textContent = (partial ? "at least " : "") + total.toLocaleString("en") + (total === 1 ? " match" : " matches");
    $("histogram").dataset.total = String(total);
    const legend = $("legend");
    legend.textContent = "";
    for (const kind of KINDS) {
      if (!kinds.has(kind)) continue;
      const span = document.createElement("span");
      const swatch = document.createElement("i");
      swatch.className = "swatch-" + kind;
      span.append(swatch, kind);
      legend.append(span);
    }
  }

  /** Load and draw the stats of `view`; throws what `api` throws (abort included). */
  async function load(view, signal) {
    const now = Date.now();
    const params = apiParams(view, now);
    let data, from, to, bucket, counted;
    if (params.since) {
      from = parseWire(params.since);
      to = params.until ? parseWire(params.until) : now;
      bucket = view.bucket === "auto" ? autoBucket(to - from) : view.bucket;
      data = counted = await fetchStats(params, bucket, signal);
    } else {
      // Everything: per day first (where are the records?), then finer when they span little.
      bucket = view.bucket === "auto" ? "day" : view.bucket;
      data = counted = await fetchStats(params, bucket, signal);
      if (view.bucket === "auto" && data.bars.size) {
        const end = Math.min(data.last + DAY, params.until ? parseWire(params.until) : Infinity);
        const finer = autoBucket(end - data.first);
        if (finer !== "day") {
          bucket = finer;
          data = await fetchStats({ ...params, since: toWire(data.first), until: toWire(end) }, bucket, signal);
        }
      }
      from = data.first;
      to = data.last + BUCKET_MS[bucket];
    }
    const kinds = new Set([...data.bars.values()].flatMap((bar) => Object.keys(bar)));
    show(counted.total, counted.partial, kinds);
    chart.render(data.bars.size ? { from, to, bucket, bucketMs: BUCKET_MS[bucket], bars: data.bars } : null);
  }

  return { load, redraw: () => chart.render() };
}
