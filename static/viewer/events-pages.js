// Top pages and the click heat map. The pages are counted by the server over every matching
// event (GET /api/events/pages): views, clicks, events and sessions per page, the most viewed
// first; then the clicks of one page (the view's `map`, else the most clicked page) drawn by
// events-heatmap.js from that page's newest clicks (at most SAMPLE_PAGES pages of 1000).
"use strict";

import { drawHeatmap } from "./events-heatmap.js";
import { clickPoint, fetchPages } from "./events-lists.js";
import { api } from "./net.js";

const $ = (id) => document.getElementById(id);
const SAMPLE_PAGES = 3; // the heat map's clicks: 3 pages of 1000 events
const TOP = 10; // rows of the table
const CHOICES = 100; // pages offered to the heat map: the most clicked ones

/** Top pages and the heat map; `onPick(page)` when a page is chosen for the heat map. */
export function createPages({ headers, onPick }) {
  let clicks = [];
  let mostClicked = ""; // the heat map's page when the view names none
  const select = $("ev-heat-page");
  select.addEventListener("change", () => onPick(select.value));

  function showTop(rows) {
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
    $("ev-pages-note").textContent = rows.length ? "" : "· none";
  }

  function choices(rows, chosen) {
    const pages = rows.filter((r) => r.clicks).map((r) => r.page);
    if (chosen && !pages.includes(chosen)) pages.unshift(chosen);
    select.textContent = "";
    for (const page of pages) select.append(new Option(page, page, false, page === chosen));
    select.disabled = !pages.length;
  }

  return {
    /** The top pages of the events matching `params`, then the clicks of `view.map`. */
    async load(view, params, signal) {
      const top = (sort, limit) => api("/api/events/pages", { ...params, sort, limit }, { headers: headers(), signal });
      const [viewed, clicked] = await Promise.all([top("views", TOP), top("clicks", CHOICES)]);
      showTop(viewed.pages);
      const rows = clicked.pages.filter((r) => r.clicks);
      mostClicked = rows.length ? rows[0].page : "";
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
