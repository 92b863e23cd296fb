// Top pages and the click heat map. Both are counted here from the newest matching events
// (at most SAMPLE of them: the note says when the count is a sample): views, clicks, events
// and sessions per page; then the clicks of one page (the view's `map`, else the most
// clicked page) drawn by events-heatmap.js.
"use strict";

import { drawHeatmap } from "./events-heatmap.js";
import { clickPoint, fetchPages } from "./events-lists.js";

const $ = (id) => document.getElementById(id);
const SAMPLE_PAGES = 3; // 3 pages of 1000 events
const TOP = 10;
/** The names a page view has, per source (tracker.js, the WebSocket, the tracker demo). */
export const VIEW_NAMES = new Set(["page_view", "pageview", "visit", "load"]);

/** `[{page, views, clicks, events, sessions}]`, most viewed first. */
export function topPages(events) {
  const pages = new Map();
  for (const e of events) {
    if (!e.page) continue;
    if (!pages.has(e.page)) pages.set(e.page, { page: e.page, views: 0, clicks: 0, events: 0, sessions: new Set() });
    const row = pages.get(e.page);
    row.events += 1;
    if (VIEW_NAMES.has(e.name)) row.views += 1;
    if (e.name === "click") row.clicks += 1;
    if (e.session) row.sessions.add(e.session);
  }
  return [...pages.values()]
    .map((row) => ({ ...row, sessions: row.sessions.size }))
    .sort((a, b) => b.views - a.views || b.events - a.events || (a.page < b.page ? -1 : 1));
}

/** Top pages and the heat map; `onPick(page)` when a page is chosen for the heat map. */
export function createPages({ headers, onPick }) {
  let clicks = [];
  let mostClicked = ""; // the heat map's page when the view names none
  const select = $("ev-heat-page");
  select.addEventListener("change", () => onPick(select.value));

  function showTop(rows, complete) {
    const body = $("ev-pages").tBodies[0];
    body.textContent = "";
    for (const row of rows.slice(0, TOP)) {
      const tr = document.createElement("tr");
      tr.dataset.page = row.page;
      for (const [i, value] of [row.page, row.views, row.clicks, row.events, row.sessions].entries()) {
        const td = document.createElement("td");
        td.textContent = String(value);
        td.className = i ? "num" : "page";
        if (!i) td.title = row.page;
        tr.append(td);
      }
      tr.title = "Show the clicks of " + row.page;
      tr.addEventListener("click", () => onPick(row.page));
      body.append(tr);
    }
    $("ev-pages-note").textContent = rows.length ? (complete ? "" : "· of the newest " + (SAMPLE_PAGES * 1000).toLocaleString("en") + " events") : "· none";
  }

  function choices(rows, chosen) {
    const pages = rows.filter((r) => r.clicks).map((r) => r.page);
    if (chosen && !pages.includes(chosen)) pages.unshift(chosen);
    select.textContent = "";
    for (const page of pages) select.append(new Option(page, page, false, page === chosen));
    select.disabled = !pages.length;
  }

  return {
    /** Count the pages of the events matching `params`, then show the clicks of `view.map`. */
    async load(view, params, signal) {
      const { items, complete } = await fetchPages("/api/events", "events", params, { headers, signal, maxPages: SAMPLE_PAGES });
      const rows = topPages(items);
      showTop(rows, complete);
      const byClicks = [...rows].sort((a, b) => b.clicks - a.clicks);
      mostClicked = byClicks[0]?.clicks ? byClicks[0].page : "";
      choices(rows, view.map || mostClicked);
      await this.loadMap(view.map, params, signal);
    },
    /** The clicks of `chosen` (else of the most clicked page; any name filter aside). */
    async loadMap(chosen, params, signal) {
      const page = chosen || mostClicked;
      for (const row of $("ev-pages").tBodies[0].rows) row.classList.toggle("chosen", row.dataset.page === page);
      if (select.value !== page && page) choices([...select.options].map((o) => ({ page: o.value, clicks: 1 })), page);
      if (!page) {
        clicks = [];
        $("ev-heat-note").textContent = "· no clicks";
        drawHeatmap($("ev-heatmap"), clicks);
        $("ev-heatmap").dataset.page = page;
        return;
      }
      const { items, complete } = await fetchPages("/api/events", "events", { ...params, name: "click", page }, { headers, signal, maxPages: SAMPLE_PAGES });
      clicks = [];
      for (const e of items) {
        const point = clickPoint(e);
        if (point) clicks.push({ ...point, w: Number(e.data.w) || 0, h: Number(e.data.h) || 0 });
      }
      $("ev-heat-note").textContent = "· " + (complete ? "" : "the newest ") + clicks.length.toLocaleString("en") + (clicks.length === 1 ? " click" : " clicks");
      drawHeatmap($("ev-heatmap"), clicks);
      $("ev-heatmap").dataset.page = page; // once drawn: the data-* attributes agree
    },
    redraw() {
      drawHeatmap($("ev-heatmap"), clicks);
    },
  };
}
