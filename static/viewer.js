// The log viewer: sign in, then filter, search, chart, scroll, tail and open one user's logs.
// Plain JavaScript modules, no library: every byte comes from this server.
//
// The URL is the source of truth: every filter, the range and the open record live in its
// query string (view.js), so Back/Forward, reloads and bookmarks show the same view. The
// parts live in viewer/: net (calls and back-off), session, view, table, stats and chart,
// detail, tail, times; the Events tab (usage events) is viewer/events.js, shown when the URL
// says tab=events.
"use strict";

import { createDetail } from "./viewer/detail.js";
import { createEventsTab, isEventsURL, showTab } from "./viewer/events.js";
import { ApiError, api, attachBanner, onForbidden, reportDown } from "./viewer/net.js";
import { credentials, forget, headers, remember, signIn } from "./viewer/session.js";
import { createStats } from "./viewer/stats.js";
import { attachSuggestions } from "./viewer/suggest.js";
import { createTable } from "./viewer/table.js";
import { startTail } from "./viewer/tail.js";
import { getZone, onZoneChange, parseWire, setZone, toWire, zoneLabel } from "./viewer/times.js";
import { apiParams, emptyView, fillForm, labelTimes, listParams, readForm, sameRecords, urlOf, viewFromURL } from "./viewer/view.js";

const $ = (id) => document.getElementById(id);
const TYPING_MS = 1500; // keystrokes closer than this share one history entry

let view = emptyView(); // what is shown
let stopTail = null;
let statsController = null;
let lastTyping = { field: null, at: 0 }; // the last history entry made by typing
let loaded = false; // whether the records shown are those of `view`

attachBanner($("banner"));
onForbidden(() => signOut("Signed out: the user or token was refused."));

// -- theme: follows prefers-color-scheme, or the choice made here (remembered) ----------------
const THEMES = ["auto", "light", "dark"];
function applyTheme(theme) {
  if (theme === "auto") delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = theme;
  $("theme").textContent = "Theme: " + theme;
  stats.redraw();
  eventsTab.redraw();
}
$("theme").addEventListener("click", () => {
  const current = localStorage.getItem("bls.theme") || "auto";
  const next = THEMES[(THEMES.indexOf(current) + 1) % THEMES.length];
  localStorage.setItem("bls.theme", next);
  applyTheme(next);
});
matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => { stats.redraw(); eventsTab.redraw(); });

// -- the parts ------------------------------------------------------------------------------
const table = createTable({ headers, onOpen: (record) => openRecord(record, "push") });
const stats = createStats({
  headers,
  onZoom: (from, to) => go({ ...view, range: "", since: toWire(from), until: toWire(to) }, "push"),
});
const eventsTab = createEventsTab({ headers });
attachSuggestions({ input: $("filter-p_name"), list: $("suggest-p_name"), field: "process", headers });
attachSuggestions({ input: $("filter-p_description"), list: $("suggest-p_description"), field: "logger", headers });
const permalink = (record) => location.origin + "/" + urlOf({ ...emptyView(), record: String(record.id), at: record.event_at });
const detail = createDetail({
  neighbour: table.neighbour,
  hasNeighbour: table.hasNeighbour,
  permalink,
  onMove: (record) => go({ ...view, record: String(record.id), at: record.event_at }, "replace"),
  onClose: (record) => {
    table.focus(record.id);
    if (!view.record) return;
    if (history.state?.opened) history.back(); // the entry that opened it
    else go({ ...view, record: "", at: "" }, "replace");
  },
});

// -- sign-in --------------------------------------------------------------------------------
function showSignIn(message) {
  $("app").hidden = true;
  $("signin").hidden = false;
  $("signin-error").textContent = message || "";
  $("signin-user").focus();
}

function signOut(message) {
  stopTail?.();
  stopTail = null;
  $("live").checked = false;
  forget();
  detail.close();
  showSignIn(message);
}

$("signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const user = $("signin-user").value.trim();
  const error = $("signin-error");
  error.textContent = "Signing in…";
  let answer;
  try {
    answer = await signIn(user, $("signin-token").value); // a password or a token
  } catch (e) {
    error.textContent = "The server is unreachable: check that it is running, then try again.";
    return;
  }
  if (!answer.token) {
    error.textContent =
      answer.status === 403 ? "Wrong user, password or token."
        : answer.status === 429 ? "Too many failed sign-ins: try again in " + (answer.retryAfter || 60) + " s."
          : answer.status === 503 ? "The server cannot reach its database right now (503): try again in a moment."
            : "The server answered " + answer.status + ": try again in a moment.";
    return;
  }
  remember(user, answer.token, $("signin-remember").checked);
  $("signin-token").value = "";
  start();
});
$("signout").addEventListener("click", () => signOut(""));

// -- the view: URL <-> form <-> what is shown -------------------------------------------------
/**
 * Show `next` and put it in the URL: a new history entry ("push") or the same ("replace").
 * `opened`: this entry opened a record (closing it goes Back); `typed`: the form already
 * shows `next` (it is not rewritten under the typing hand).
 */
function go(next, mode, { opened = false, typed = false } = {}) {
  const url = location.pathname + urlOf(next);
  if (url !== location.pathname + location.search) {
    if (mode === "push") history.pushState({ opened }, "", url);
    else history.replaceState({ ...history.state, ...(opened ? { opened } : {}) }, "", url);
  }
  show(next, { typed });
}

/** Make the page show `next` (loading only what changed). */
function show(next, { force = false, typed = false } = {}) {
  const previous = view;
  view = next;
  fillForm(view, !typed);
  if (!typed && !validates()) { loaded = false; return; } // a bad bookmark: nothing is sent
  force = force || !loaded;
  loaded = true;
  $("more-filters").textContent = "Filters" + (activeExtras() ? " (" + activeExtras() + ")" : "");
  if (force || !sameRecords(previous, view) || previous.bucket !== view.bucket) {
    if (force || !sameRecords(previous, view)) table.reset(view);
    loadStats();
    if ($("live").checked && (force || !sameRecords(previous, view))) restartTail();
  }
  syncRecord();
}

const activeExtras = () => ["p_name", "p_description", "pid", "since", "until"].filter((k) => view[k]).length;

async function loadStats() {
  statsController?.abort();
  statsController = new AbortController();
  try {
    await stats.load(view, statsController.signal);
  } catch (error) {
    if (error instanceof ApiError) $("total").textContent = "Chart: " + error.message;
  }
}

/** Open or close the dialog as the URL says. */
async function syncRecord() {
  if (!view.record) { detail.close(); return; }
  if (String(detail.shownId()) === view.record) return;
  const id = Number(view.record);
  let record = table.record(id);
  if (!record && view.at) {
    const since = parseWire(view.at);
    try {
      const page = await api("/api/logs", { since: view.at, until: toWire(Math.floor(since) + 1000), limit: 500 }, { headers: headers() });
      record = page.logs.find((r) => r.id === id);
    } catch (error) {
      if (error instanceof ApiError) $("status").textContent = "Could not open record " + id + ": " + error.message;
      return;
    }
  }
  if (view.record !== String(id)) return; // the URL moved on meanwhile
  if (record) detail.open(record);
  else $("status").textContent = "Record " + id + " was not found.";
}

function openRecord(record, mode) {
  go({ ...view, record: String(record.id), at: record.event_at }, mode, { opened: mode === "push" });
}

/** Show the tab and the view the URL names (`force`: load it again). */
function route({ force = false } = {}) {
  const tab = isEventsURL(location.search) ? "events" : "logs";
  const switched = $("app").dataset.tab !== tab;
  showTab(tab);
  if (tab === "events") eventsTab.show(location.search, { force: force || switched });
  else show(viewFromURL(location.search), { force });
}
window.addEventListener("popstate", () => route());
for (const [id, url] of [["tab-logs", () => location.pathname + urlOf(view)], ["tab-events", () => eventsTab.url()]]) {
  $(id).addEventListener("click", (event) => {
    if (event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey) return;
    event.preventDefault();
    if (url() !== location.pathname + location.search) history.pushState({}, "", url());
    route();
  });
}

/** Whether the form's inputs are valid; if not, the problems are in the status line. */
function validates() {
  const { errors } = readForm(view);
  if (errors.length) {
    $("status").textContent = errors.map((e) => e.message).join(" · ");
    $("status").classList.add("error");
  }
  return !errors.length;
}

// Typing: 300 ms after the last key, with one history entry per burst of typing.
let debounce = null;
function fromForm(field) {
  clearTimeout(debounce);
  debounce = setTimeout(() => {
    if (!validates()) return; // never sent: nothing to retry, nothing to storm
    const { view: next } = readForm(view);
    const now = Date.now();
    const more = field && field === lastTyping.field && now - lastTyping.at < TYPING_MS;
    table.repaint();
    go(next, more ? "replace" : "push", { typed: true });
    lastTyping = { field, at: field ? now : 0 };
  }, field ? 300 : 0);
}
$("filters").addEventListener("input", (event) => fromForm(event.target.tagName === "INPUT" ? event.target.id : null));
$("filters").addEventListener("submit", (event) => { event.preventDefault(); fromForm(null); });
$("filters").addEventListener("reset", (event) => {
  event.preventDefault();
  go({ ...emptyView(), bucket: view.bucket, sort: view.sort }, "push");
});
$("arrival").addEventListener("change", () => go({ ...view, sort: $("arrival").checked ? "id" : "" }, "push"));
$("bucket").addEventListener("change", () => go({ ...view, bucket: $("bucket").value }, "push"));
for (const button of document.querySelectorAll("#ranges button")) {
  button.addEventListener("click", () => go({ ...view, range: button.dataset.range, since: "", until: "" }, "push"));
}
$("more-filters").addEventListener("click", () => {
  const open = $("filters").classList.toggle("open");
  $("more-filters").setAttribute("aria-expanded", String(open));
});

// -- times: UTC or local ------------------------------------------------------------------
function paintZone() {
  $("zone").textContent = getZone() === "utc" ? "UTC" : "Local";
  $("time-head").textContent = "Event time (" + zoneLabel() + ")";
}
$("zone").addEventListener("click", () => setZone(getZone() === "utc" ? "local" : "utc"));
onZoneChange(() => {
  paintZone();
  fillForm(view);
  table.retime();
  detail.retime();
  stats.redraw();
  eventsTab.retime();
});

// -- live tail ------------------------------------------------------------------------------
function restartTail() {
  stopTail?.();
  stopTail = startTail({
    params: apiParams(view),
    afterId: table.lastId(),
    headers,
    onRecord: (record) => {
      table.addLive(record);
      clearTimeout(restartTail.chart);
      restartTail.chart = setTimeout(loadStats, 1000);
    },
    onForbidden: () => signOut("Signed out: the user or token was refused."),
  });
}
$("live").addEventListener("change", () => {
  if ($("live").checked) restartTail();
  else { stopTail?.(); stopTail = null; }
});

// -- export ---------------------------------------------------------------------------------
async function download(format) {
  const query = new URLSearchParams({ ...listParams(view), format }).toString();
  let response;
  try {
    response = await fetch("/api/logs/export?" + query, { headers: headers() });
  } catch (error) {
    reportDown("unreachable", 0);
    return;
  }
  if (!response.ok) { $("status").textContent = "Export failed: HTTP " + response.status; return; }
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement("a");
  link.href = url;
  link.download = "logs." + format;
  link.click();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
$("export-ndjson").addEventListener("click", () => download("ndjson"));
$("export-csv").addEventListener("click", () => download("csv"));

// -- keys: / search, j/k move, Enter opens (table.js), Esc closes (the dialog), ? help ------
document.addEventListener("keydown", (event) => {
  if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
  if ($("app").hidden || $("detail").open || $("app").dataset.tab === "events") return;
  if (event.target.closest("input, select, textarea, [contenteditable]")) {
    if (event.key === "Escape" && event.target.id === "filter-q") event.target.blur();
    return;
  }
  if (event.key === "/") { event.preventDefault(); $("filter-q").focus(); $("filter-q").select(); }
  else if (event.key === "?") { event.preventDefault(); $("search-help").togglePopover(); }
  else if (event.key === "j") { event.preventDefault(); table.move(1); }
  else if (event.key === "k") { event.preventDefault(); table.move(-1); }
});

// -- start ----------------------------------------------------------------------------------
function start() {
  const c = credentials();
  if (!c) { showSignIn(""); return; }
  $("whoami").textContent = "as " + c.user;
  $("signin").hidden = true;
  $("app").hidden = false;
  route({ force: true });
}

paintZone();
applyTheme(localStorage.getItem("bls.theme") || "auto");
labelTimes(view);
let resizing = null;
window.addEventListener("resize", () => { clearTimeout(resizing); resizing = setTimeout(() => { stats.redraw(); eventsTab.redraw(); }, 200); });
start();
