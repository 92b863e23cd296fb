// The list of records: pages loaded as the end comes into view (newest event first, or
// newest arrival first when the view says sort=id), live records added in their place,
// and a keyboard cursor (one row is in the tab order; j/k move it, Enter opens the record).
// Text from records is only ever set with textContent (never parsed as HTML).
"use strict";

import { levelKind } from "./chart.js";
import { ApiError, api, isAbort } from "./net.js";
import { formatWire } from "./times.js";
import { listParams } from "./view.js";

const $ = (id) => document.getElementById(id);
const PAGE = 200;
const COLUMNS = ["time", "lvl", "process", "logger", "pid", "msg"];

/** The table; `onOpen(record)` when a row is clicked or Enter is pressed on it. */
export function createTable({ headers, onOpen }) {
  const body = $("logs").tBodies[0];
  const more = $("more");
  const state = { view: null, cursor: null, done: false, busy: false, failed: false, records: new Map(), controller: null, lastId: 0 };

  function row(record) {
    const tr = document.createElement("tr");
    const kind = levelKind(record.level);
    tr.dataset.id = record.id;
    tr.className = "row-" + kind;
    tr.tabIndex = -1;
    const values = [formatWire(record.event_at), null, record.p_name, record.p_description, record.pid, record.msg];
    values.forEach((value, i) => {
      const td = document.createElement("td");
      td.className = COLUMNS[i];
      if (i === 0) td.dataset.at = record.event_at;
      if (i === 1) {
        const badge = document.createElement("span");
        badge.className = "level lvl-" + kind;
        badge.textContent = record.level_name;
        td.append(badge);
      } else {
        td.textContent = String(value);
        if (i === 5) td.title = String(value).slice(0, 500);
      }
      tr.append(td);
    });
    tr.addEventListener("click", () => { focusRow(tr); onOpen(record); });
    return tr;
  }

  function status(message, isError) {
    const count = body.rows.length;
    $("status").textContent = message || (count ? count + " records shown" + (state.done ? " (all)" : "") : state.done ? "No records match." : "");
    $("status").classList.toggle("error", Boolean(isError));
  }

  function add(records) {
    for (const record of records) {
      if (state.records.has(record.id)) continue;
      state.records.set(record.id, record);
      state.lastId = Math.max(state.lastId, record.id);
      body.append(row(record));
    }
    if (!body.querySelector("tr[tabindex='0']") && body.rows.length) body.rows[0].tabIndex = 0;
  }

  /** Load the next page (at most one at a time); resolves when it is shown. */
  async function loadMore() {
    if (state.busy || state.done || state.failed || !state.view) return;
    state.busy = true;
    const { signal } = state.controller;
    more.textContent = "Loading…";
    try {
      const params = { ...listParams(state.view), limit: PAGE };
      if (state.cursor) params.cursor = state.cursor;
      const page = await api("/api/logs", params, { headers: headers(), signal });
      add(page.logs);
      state.cursor = page.next_cursor;
      state.done = page.next_cursor === null;
      status();
    } catch (error) {
      if (isAbort(error) || signal.aborted) return;
      // Shown, never retried in a loop: a new view (or a reload) tries again.
      state.failed = true;
      status("Could not load: " + (error instanceof ApiError ? error.message : String(error)), true);
    } finally {
      if (!signal.aborted) {
        state.busy = false;
        more.textContent = state.done || state.failed ? "" : "Scroll for more";
        // Fill the screen: keep loading while the end is visible.
        if (!state.done && !state.failed && more.getBoundingClientRect().top < window.innerHeight) loadMore();
      }
    }
  }

  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting) && !$("app").hidden) loadMore();
  }).observe(more);

  /** Show `view` from its first page (what was loading for the previous view is dropped). */
  function reset(view) {
    state.controller?.abort();
    state.controller = new AbortController();
    Object.assign(state, { view, cursor: null, done: false, busy: false, failed: false });
    state.records.clear();
    body.textContent = "";
    status("Loading…");
    loadMore();
  }

  /** Whether `a` is listed above `b` in the view's order (event time then id, or id). */
  function above(a, b) {
    if (state.view?.sort !== "id" && a.event_at !== b.event_at) return a.event_at > b.event_at;
    return a.id > b.id;
  }

  /** A record from the live tail: in its place (above every older one; a late record, by
   * event time, below the newer ones). */
  function addLive(record) {
    if (state.records.has(record.id)) return;
    state.records.set(record.id, record);
    state.lastId = Math.max(state.lastId, record.id);
    const tr = row(record);
    tr.classList.add("fresh");
    let before = body.firstChild;
    while (before && above(state.records.get(Number(before.dataset.id)), record)) before = before.nextSibling;
    body.insertBefore(tr, before);
    if (!body.querySelector("tr[tabindex='0']")) tr.tabIndex = 0;
    status();
  }

  function focusRow(tr, focus = true) {
    for (const other of body.querySelectorAll("tr[tabindex='0']")) other.tabIndex = -1;
    tr.tabIndex = 0;
    if (focus) tr.focus();
    tr.scrollIntoView({ block: "nearest" });
  }

  const current = () => body.querySelector("tr[tabindex='0']");

  /** Move the keyboard cursor by `delta` rows (loading the next page at the end). */
  async function move(delta) {
    const tr = current();
    if (!tr) return;
    if (document.activeElement !== tr) { focusRow(tr); return; }
    let target = delta > 0 ? tr.nextElementSibling : tr.previousElementSibling;
    if (!target && delta > 0 && !state.done) { await loadMore(); target = tr.nextElementSibling; }
    if (target) focusRow(target);
  }

  /** The record loaded before (`delta` -1, newer) or after (+1, older) record `id`, or null. */
  async function neighbour(id, delta) {
    const tr = body.querySelector(`tr[data-id="${Number(id)}"]`);
    if (!tr) return null;
    let target = delta > 0 ? tr.nextElementSibling : tr.previousElementSibling;
    if (!target && delta > 0 && !state.done) { await loadMore(); target = tr.nextElementSibling; }
    if (!target) return null;
    focusRow(target, false);
    return state.records.get(Number(target.dataset.id));
  }

  body.addEventListener("keydown", (event) => {
    const tr = event.target.closest("tr");
    if (event.key === "Enter" && tr) { event.preventDefault(); onOpen(state.records.get(Number(tr.dataset.id))); }
  });
  body.addEventListener("focusin", (event) => { const tr = event.target.closest("tr"); if (tr) focusRow(tr, false); });

  return {
    reset,
    loadMore,
    /** Show the table's own status again (after a message about the filters). */
    repaint: () => status(),
    addLive,
    move,
    neighbour,
    /** Focus the row of record `id` (after the dialog closes). */
    focus(id) { const tr = body.querySelector(`tr[data-id="${Number(id)}"]`); if (tr) focusRow(tr); },
    /** The loaded record `id`, or undefined. */
    record: (id) => state.records.get(Number(id)),
    /** Whether record `id` is loaded and not yet at the end of what was loaded. */
    hasNeighbour: (id, delta) => {
      const tr = body.querySelector(`tr[data-id="${Number(id)}"]`);
      return Boolean(tr && (delta < 0 ? tr.previousElementSibling : tr.nextElementSibling || !state.done));
    },
    /** The newest record id seen (where a live tail starts). */
    lastId: () => state.lastId,
    /** Redraw every time in the current display zone. */
    retime() { for (const td of body.querySelectorAll("td.time")) td.textContent = formatWire(td.dataset.at); },
  };
}
