// The Events tab's view: its filters, time range, chart bucket and heat-map page, as one plain
// object that round-trips through the URL (/?tab=events&name=click&session=7f9c&range=24h)
// and through the tab's filter form. As for logs, a bad input is marked on its field and
// never sent to the server.
"use strict";

import { parseInput, parseWire, toInput, toWire, zoneLabel } from "./times.js";
import { RANGES } from "./view.js";

export const SOURCES = ["api", "stats", "track", "eye", "microticks"];
const TEXT = ["session", "category", "name", "page"];
const LIMITS = { session: 64, category: 255, name: 255, page: 2048 };
const BUCKETS = ["minute", "hour", "day"];

const $ = (id) => document.getElementById(id);

/** Whether the URL's query string asks for the Events tab. */
export const isEventsURL = (search) => new URLSearchParams(search).get("tab") === "events";

/** An empty Events view: every event, any time. */
export const emptyEventsView = () => ({
  tab: "events", source: "", session: "", category: "", name: "", page: "",
  since: "", until: "", range: "", invalid: "", bucket: "auto", map: "",
});

/** The Events view a URL's query string describes (unknown keys are ignored). */
export function eventsViewFromURL(search) {
  const params = new URLSearchParams(search);
  const view = emptyEventsView();
  for (const key of Object.keys(view)) {
    const value = params.get(key);
    if (value !== null && key !== "tab") view[key] = value.trim();
  }
  if (!SOURCES.includes(view.source)) view.source = "";
  if (!BUCKETS.includes(view.bucket)) view.bucket = "auto";
  if (!(view.range in RANGES)) view.range = "";
  if (view.invalid !== "true") view.invalid = "";
  return view;
}

/** The query string of `view`: always `?tab=events`, then the keys that are set. */
export function eventsURLOf(view) {
  const params = new URLSearchParams({ tab: "events" });
  const empty = emptyEventsView();
  for (const key of Object.keys(empty)) if (key !== "tab" && view[key] && view[key] !== empty[key]) params.set(key, view[key]);
  return "?" + params.toString();
}

/** Whether `a` and `b` select the same events (the bucket and heat-map page aside). */
export const sameEvents = (a, b) =>
  Object.keys(emptyEventsView()).every((key) => key === "bucket" || key === "map" || a[key] === b[key]);

/** The API's filter parameters for `view` (a quick range counts back from `now`). */
export function eventsParams(view, now = Date.now()) {
  const out = {};
  for (const key of ["source", ...TEXT, "since", "until"]) if (view[key]) out[key] = view[key];
  if (view.invalid) out.invalid_time = "true";
  if (view.range) out.since = toWire(Math.floor((now - RANGES[view.range]) / 1000) * 1000);
  return out;
}

/** The filters `/api/sessions` takes, from `params` (sessions have no name, page, category). */
export const sessionParams = (params) =>
  Object.fromEntries(Object.entries(params).filter(([key]) => ["source", "session", "since", "until"].includes(key)));

function check(field, message) {
  const input = $("ev-" + field);
  input.setCustomValidity(message);
  input.setAttribute("aria-invalid", String(Boolean(message)));
  input.title = message;
  return message ? [{ field, message }] : [];
}

/** Show `view` in the form (`inputs`: the fields too, not only the range buttons). */
export function fillEventsForm(view, inputs = true) {
  if (inputs) {
    for (const key of TEXT) $("ev-" + key).value = view[key];
    $("ev-source").value = view.source;
    $("ev-invalid").checked = view.invalid === "true";
    $("ev-bucket").value = view.bucket;
    for (const key of ["since", "until"]) {
      const ms = view[key] ? parseWire(view[key]) : NaN;
      $("ev-" + key).value = Number.isNaN(ms) ? view[key] : toInput(ms);
    }
    for (const key of [...TEXT, "since", "until"]) check(key, "");
  }
  const typed = Boolean(view.since || view.until);
  for (const button of document.querySelectorAll("#ev-ranges button")) {
    button.setAttribute("aria-pressed", String(!typed && button.dataset.range === view.range));
  }
  for (const key of ["since", "until"]) $("ev-label-" + key).textContent = (key === "since" ? "Since" : "Until") + " (" + zoneLabel() + ")";
}

/**
 * The view the form shows (with `base`'s range, bucket and heat-map page), and the problems
 * of its inputs: `{view, errors: [{field, message}]}`. A view with errors is never sent.
 */
export function readEventsForm(base) {
  const view = { ...base };
  const errors = [];
  for (const key of TEXT) {
    view[key] = $("ev-" + key).value.trim();
    const label = key[0].toUpperCase() + key.slice(1);
    errors.push(...check(key, view[key].length > LIMITS[key] ? label + ": at most " + LIMITS[key] + " characters" : ""));
  }
  view.source = $("ev-source").value;
  view.invalid = $("ev-invalid").checked ? "true" : "";
  const times = {};
  for (const key of ["since", "until"]) {
    const text = $("ev-" + key).value.trim();
    times[key] = text ? parseInput(text) : null;
    view[key] = times[key] === null ? "" : Number.isNaN(times[key]) ? text : toWire(times[key]);
    const label = key === "since" ? "Since" : "Until";
    errors.push(...check(key, Number.isNaN(times[key]) ? label + ": a time like 2024-05-05 14:30 (" + zoneLabel() + ")" : ""));
  }
  if (times.since !== null && times.until !== null && times.since >= times.until && !errors.length) {
    errors.push(...check("until", "Until: must be after Since"));
  }
  if (view.since || view.until) view.range = "";
  return { view, errors };
}
