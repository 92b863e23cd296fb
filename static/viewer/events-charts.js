// The Events tab's charts, drawn by chart.js on a real time axis (an empty bucket is a gap):
// events per name over time (GET /api/events/stats; the seven most frequent names, the rest
// as "other"), and sessions started per day (GET /api/sessions/stats: every session counted
// by the server, per UTC day as the events' buckets).
"use strict";

import { BUCKET_MS, createChart } from "./chart.js";
import { eventsParams, sessionParams } from "./events-view.js";
import { api } from "./net.js";
import { DAY, HOUR, parseWire, toWire } from "./times.js";

const $ = (id) => document.getElementById(id);
const SERIES = 7; // names drawn on their own; the others are summed as "other"

/** The bucket that draws `spanMs` in a few hundred bars at most (as the logs' histogram). */
const autoBucket = (spanMs) => (spanMs <= 6 * HOUR ? "minute" : spanMs <= 14 * DAY ? "hour" : "day");

/** A chart of chart.js on canvas `id` (its hover, band and tip are its siblings). */
function chartOn(id, options) {
  const canvas = $(id), box = canvas.parentElement;
  return createChart({
    canvas,
    tip: box.querySelector(".chart-tip"),
    band: box.querySelector(".chart-band"),
    hover: box.querySelector(".chart-hover"),
    ...options,
  });
}

/** `{bars: Map(startMs -> {name: count}), totals: Map(name -> count), total, first, last}`. */
function collect(counts) {
  const bars = new Map(), totals = new Map();
  let total = 0, first = Infinity, last = -Infinity;
  for (const c of counts) {
    const start = parseWire(c.start);
    if (!bars.has(start)) bars.set(start, {});
    bars.get(start)[c.name] = (bars.get(start)[c.name] || 0) + c.count;
    totals.set(c.name, (totals.get(c.name) || 0) + c.count);
    total += c.count;
    first = Math.min(first, start);
    last = Math.max(last, start);
  }
  return { bars, totals, total, first, last };
}

/** Keep the `SERIES` most frequent names; fold the others into "other". */
function series(data) {
  const ranked = [...data.totals].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).map(([name]) => name);
  const kept = ranked.slice(0, SERIES);
  if (ranked.length > SERIES) {
    const keep = new Set(kept);
    for (const bar of data.bars.values()) {
      for (const name of Object.keys(bar)) {
        if (keep.has(name)) continue;
        bar["other "] = (bar["other "] || 0) + bar[name];
        delete bar[name];
      }
    }
    kept.push("other ");
  }
  const colours = Object.fromEntries(kept.map((name, i) => [name, name === "other " ? "ev-other" : "ev-" + (i + 1)]));
  return { kinds: kept, colours };
}

function legend(kinds, colours) {
  const box = $("ev-legend");
  box.textContent = "";
  for (const name of kinds) {
    const span = document.createElement("span");
    const swatch = document.createElement("i");
    swatch.className = "swatch-" + colours[name];
    span.dataset.name = name.trim();
    span.append(swatch, name.trim());
    box.append(span);
  }
}

/** The two charts; `onZoom(fromMs, toMs)` when a range is dragged across either. */
export function createEventCharts({ headers, onZoom }) {
  const names = chartOn("ev-chart", { onZoom, empty: "No events" });
  const sessions = chartOn("ev-sessions-chart", { onZoom, empty: "No sessions" });

  const stats = async (params, bucket, signal) =>
    collect((await api("/api/events/stats", { ...params, bucket }, { headers: headers(), signal })).counts);

  /** Events per name: the same choice of bucket and span as the logs' histogram. */
  async function loadNames(view, params, now, signal) {
    let data, counted, from, to, bucket;
    if (params.since) {
      from = parseWire(params.since);
      to = params.until ? parseWire(params.until) : now;
      bucket = view.bucket === "auto" ? autoBucket(to - from) : view.bucket;
      data = counted = await stats(params, bucket, signal);
    } else {
      // Everything: per day first (where are the events?), then finer while they span little.
      bucket = view.bucket === "auto" ? "day" : view.bucket;
      data = counted = await stats(params, bucket, signal);
      while (view.bucket === "auto" && data.bars.size) {
        const end = Math.min(data.last + BUCKET_MS[bucket], params.until ? parseWire(params.until) : Infinity);
        const finer = autoBucket(end - data.first);
        if (BUCKET_MS[finer] >= BUCKET_MS[bucket]) break;
        bucket = finer;
        data = await stats({ ...params, since: toWire(data.first), until: toWire(end) }, bucket, signal);
      }
      from = data.first;
      to = data.last + BUCKET_MS[bucket];
    }
    $("ev-total").textContent = counted.total.toLocaleString("en") + (counted.total === 1 ? " event" : " events");
    $("ev-chart").dataset.total = String(counted.total);
    const { kinds, colours } = series(data);
    legend(kinds, colours);
    names.render(data.bars.size ? { from, to, bucket, bucketMs: BUCKET_MS[bucket], bars: data.bars, kinds, colours, unit: "event" } : null);
  }

  /** Sessions started per day (UTC days, as the server's buckets), counted by the server. */
  async function loadSessions(params, now, signal) {
    const answer = await api("/api/sessions/stats", { ...sessionParams(params), bucket: "day" }, { headers: headers(), signal });
    const bars = new Map();
    for (const c of answer.counts) bars.set(parseWire(c.start), { sessions: c.count });
    const days = [...bars.keys()];
    const from = params.since ? Math.floor(parseWire(params.since) / DAY) * DAY : Math.min(...days);
    const to = (params.until ? Math.ceil(parseWire(params.until) / DAY) : Math.floor(Math.max(now, ...days) / DAY) + 1) * DAY;
    // partial: more than 10,000 days had sessions (the oldest are left out).
    const total = answer.total;
    $("ev-sessions-total").textContent = "· " + (answer.partial ? "at least " : "") + total.toLocaleString("en") + (total === 1 ? " session" : " sessions");
    $("ev-sessions-chart").dataset.total = String(total);
    sessions.render(days.length ? { from, to, bucket: "day", bucketMs: DAY, bars, kinds: ["sessions"], colours: { sessions: "ev-1" }, unit: "session" } : null);
  }

  return {
    /** Load and draw both charts for `view`; throws what `api` throws (abort included). */
    async load(view, signal) {
      const now = Date.now();
      const params = eventsParams(view, now);
      await Promise.all([loadNames(view, params, now, signal), loadSessions(params, now, signal)]);
    },
    /** Only the names chart (after a change of bucket). */
    async loadNames(view, signal) {
      const now = Date.now();
      await loadNames(view, eventsParams(view, now), now, signal);
    },
    redraw() {
      names.render();
      sessions.render();
    },
  };
}
