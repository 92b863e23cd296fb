// The view: every filter, the search, the time range, the chart's bucket, the order and the
// open record, as one plain object that round-trips through the URL
// (/?q=disk&level=40&range=24h&sort=id&record=7) and through the filter form. Inputs are checked here, in the page: a bad value is marked on
// its field and never sent to the server.
"use strict";

import { DAY, HOUR, MINUTE, parseInput, parseWire, toInput, toWire, zoneLabel } from "./times.js";

/** Quick ranges: the last 15 min, 1 h, 24 h or 7 d ("" is everything). */
export const RANGES = { "15m": 15 * MINUTE, "1h": HOUR, "24h": DAY, "7d": 7 * DAY };
const TEXT = ["q", "p_name", "p_description", "pid"];
const LEVELS = ["10", "20", "30", "40", "50"];
const BUCKETS = ["minute", "hour", "day"];
/** Orders of the list: "" by event time (the default), "id" by arrival. */
const SORTS = ["", "id"];
const MAX_NAME = 255;
const MAX_Q = 1000;
const MAX_PID = 2n ** 63n;

const $ = (id) => document.getElementById(id);

/** An empty view: everything, newest event first, no record open. */
export const emptyView = () => ({
  q: "", level: "", p_name: "", p_description: "", pid: "",
  since: "", until: "", range: "", bucket: "auto", sort: "", record: "", at: "",
});

/** The view a URL's query string describes (unknown keys are ignored). */
export function viewFromURL(search) {
  const params = new URLSearchParams(search);
  const view = emptyView();
  for (const key of Object.keys(view)) {
    const value = params.get(key);
    if (value !== null) view[key] = value.trim();
  }
  if (!LEVELS.includes(view.level)) view.level = "";
  if (!BUCKETS.includes(view.bucket)) view.bucket = "auto";
  if (!SORTS.includes(view.sort)) view.sort = "";
  if (!(view.range in RANGES)) view.range = "";
  if (!/^\d{1,19}$/.test(view.record)) view.record = view.at = "";
  return view;
}

/** The query string of `view` ("" for the empty view); keys in a fixed order. */
export function urlOf(view) {
  const params = new URLSearchParams();
  const empty = emptyView();
  for (const key of Object.keys(empty)) if (view[key] && view[key] !== empty[key]) params.set(key, view[key]);
  const query = params.toString();
  return query ? "?" + query : "";
}

/** Whether `a` and `b` select the same records (the open record aside). */
export function sameRecords(a, b) {
  return Object.keys(emptyView()).every((key) => key === "record" || key === "at" || key === "bucket" || a[key] === b[key]);
}

/** Show `view` in the form (`inputs`: the fields too, not only the range buttons). */
export function fillForm(view, inputs = true) {
  if (inputs) {
    for (const key of TEXT) $("filter-" + key).value = view[key];
    $("filter-level").value = view.level;
    $("bucket").value = view.bucket;
    for (const key of ["since", "until"]) {
      const ms = view[key] ? parseWire(view[key]) : NaN;
      $("filter-" + key).value = Number.isNaN(ms) ? view[key] : toInput(ms);
      check(key, "");
    }
    for (const key of TEXT) check(key, "");
  }
  $("arrival").checked = view.sort === "id";
  for (const button of document.querySelectorAll("#ranges button")) {
    const typed = Boolean(view.since || view.until); // then no quick range is on, not even "All"
    button.setAttribute("aria-pressed", String(!typed && button.dataset.range === view.range));
  }
  labelTimes(view);
}

/** The since/until labels name the zone; a quick range shows its start as a placeholder. */
export function labelTimes(view) {
  for (const key of ["since", "until"]) $("label-" + key).textContent = (key === "since" ? "Since" : "Until") + " (" + zoneLabel() + ")";
  $("filter-since").placeholder = view.range ? toInput(Math.floor((Date.now() - RANGES[view.range]) / 1000) * 1000) : "YYYY-MM-DD HH:MM";
  $("filter-until").placeholder = view.range ? "now" : "YYYY-MM-DD HH:MM";
}

function check(field, message) {
  const input = $("filter-" + field);
  input.setCustomValidity(message);
  input.setAttribute("aria-invalid", String(Boolean(message)));
  input.title = message;
  return message ? [{ field, message }] : [];
}

/**
 * Whether search `q` ends inside a phrase (a quote never closed), read as the server reads it
 * (bot_logging_server/search.py): a quote opens a phrase at the start of a term (after an
 * optional "-") or of a field's value; inside, \" and \\ are escapes. Such a search is
 * never sent: the status line says so while it is being typed.
 */
export function openQuote(q) {
  const space = (c) => /\s/.test(c);
  let i = 0;
  while (i < q.length) {
    if (space(q[i])) { i += 1; continue; }
    if (q[i] === "-" && i + 1 < q.length && !space(q[i + 1])) i += 1;
    const field = /^(process|logger|pid|level):/i.exec(q.slice(i));
    if (q[i] !== '"' && field) i += field[0].length;
    if (q[i] === '"') {
      i += 1;
      while (i < q.length && q[i] !== '"') i += q[i] === "\\" && (q[i + 1] === '"' || q[i + 1] === "\\") ? 2 : 1;
      if (i >= q.length) return true;
      i += 1;
    } else {
      while (i < q.length && !space(q[i])) i += 1;
    }
  }
  return false;
}

/**
 * The view the form shows (with `base`'s range, bucket and open record), and the problems
 * of its inputs: `{view, errors: [{field, message}]}`. A view with errors is never sent.
 */
export function readForm(base) {
  const view = { ...base };
  const errors = [];
  for (const key of TEXT) view[key] = $("filter-" + key).value.trim();
  view.level = $("filter-level").value;
  view.bucket = $("bucket").value;
  const pid = view.pid;
  const pidOk = pid === "" || (/^-?\d{1,19}$/.test(pid) && BigInt(pid) < MAX_PID && BigInt(pid) >= -MAX_PID);
  errors.push(...check("pid", pidOk ? "" : "PID: a whole number, like 4242"));
  errors.push(...check("q", view.q.length > MAX_Q ? "Search: at most " + MAX_Q + " characters"
    : openQuote(view.q) ? 'Search: close the quote (")' : ""));
  for (const key of ["p_name", "p_description"]) {
    const name = key === "p_name" ? "Process" : "Logger";
    errors.push(...check(key, view[key].length > MAX_NAME ? name + ": at most " + MAX_NAME + " characters" : ""));
  }
  const times = {};
  for (const key of ["since", "until"]) {
    const text = $("filter-" + key).value.trim();
    times[key] = text ? parseInput(text) : null;
    view[key] = times[key] === null ? "" : Number.isNaN(times[key]) ? text : toWire(times[key]);
    const label = key === "since" ? "Since" : "Until";
    errors.push(...check(key, Number.isNaN(times[key]) ? label + ": a time like 2024-05-05 14:30 (" + zoneLabel() + ")" : ""));
  }
  if (times.since !== null && times.until !== null && times.since >= times.until && !errors.length) {
    errors.push(...check("until", "Until: must be after Since"));
  }
  if (view.since || view.until) view.range = ""; // typed times replace a quick range
  return { view, errors };
}

/** The API's filter parameters for `view` (a quick range counts back from `now`). */
export function apiParams(view, now = Date.now()) {
  const out = {};
  for (const key of [...TEXT, "level", "since", "until"]) if (view[key]) out[key] = view[key];
  if (view.range) out.since = toWire(Math.floor((now - RANGES[view.range]) / 1000) * 1000);
  return out;
}

/** The parameters of the list and the export: the filters and the order (by event time
 * unless the view asks for arrival order). */
export function listParams(view, now = Date.now()) {
  return { ...apiParams(view, now), sort: view.sort === "id" ? "id" : "event_at" };
}
