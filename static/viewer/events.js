// The Events tab: usage events (tracker.js, the WebSocket, the other interfaces) with the same
// kind of filters as the logs, in the URL as theirs (/?tab=events&session=...&range=24h).
// Its parts: the charts (events-charts.js: events per name over time, sessions per day), top
// pages and the click heat map (events-pages.js), the sessions and events lists and the
// session timeline (events-lists.js). viewer.js switches tabs; this file owns the tab.
"use strict";

import { createEventCharts } from "./events-charts.js";
import { createLists, createTimeline } from "./events-lists.js";
import { createPages } from "./events-pages.js";
import {
  emptyEventsView, eventsParams, eventsURLOf, eventsViewFromURL, fillEventsForm, isEventsURL, readEventsForm, sameEvents,
} from "./events-view.js";
import { ApiError, isAbort } from "./net.js";
import { toWire } from "./times.js";

export { isEventsURL };

const $ = (id) => document.getElementById(id);
const TYPING_MS = 1500; // keystrokes closer than this share one history entry

/** Which tab `#app` shows: "logs" or "events" (the header's tab links follow). */
export function showTab(tab) {
  $("app").dataset.tab = tab;
  for (const name of ["logs", "events"]) {
    if (name === tab) $("tab-" + name).setAttribute("aria-current", "page");
    else $("tab-" + name).removeAttribute("aria-current");
  }
  document.title = (tab === "events" ? "Events" : "Logs") + " · bot-logging-server";
}

/** The Events tab; `headers()` gives the signed-in user's headers. */
export function createEventsTab({ headers }) {
  let view = null; // what is shown (null: nothing yet)
  let lastTyping = { field: null, at: 0 };
  const controllers = {};

  const go = (next, mode) => {
    const url = location.pathname + eventsURLOf(next);
    if (url !== location.pathname + location.search) {
      if (mode === "push") history.pushState({}, "", url);
      else history.replaceState(history.state, "", url);
    }
    show(next);
  };

  const charts = createEventCharts({
    headers,
    onZoom: (from, to) => go({ ...view, range: "", since: toWire(from), until: toWire(to) }, "push"),
  });
  const pages = createPages({ headers, onPick: (page) => go({ ...view, map: page }, "push") });
  const lists = createLists({ headers, onSession: (session, source) => go({ ...view, session, source, map: "" }, "push") });
  const timeline = createTimeline({ headers });

  /** Run `task(signal)` as `name`, cancelling the previous run of that name. */
  async function run(name, task) {
    controllers[name]?.abort();
    const controller = (controllers[name] = new AbortController());
    try {
      await task(controller.signal);
    } catch (error) {
      if (isAbort(error) || controller.signal.aborted) return;
      if (!(error instanceof ApiError)) throw error;
      $("ev-status").textContent = error.message;
      $("ev-status").classList.add("error");
    }
  }

  function validates() {
    const { errors } = readEventsForm(view);
    $("ev-status").textContent = errors.map((e) => e.message).join(" · ");
    $("ev-status").classList.toggle("error", errors.length > 0);
    return !errors.length;
  }

  /** Show `next` (loading only what changed; everything when `force`). */
  function show(next, { force = false, typed = false } = {}) {
    const previous = view;
    view = next;
    fillEventsForm(view, !typed);
    if (!typed && !validates()) return;
    $("ev-status").textContent = "";
    $("ev-status").classList.remove("error");
    const extras = ["name", "category", "page", "since", "until", "invalid"].filter((k) => view[k]).length;
    $("ev-more-filters").textContent = "Filters" + (extras ? " (" + extras + ")" : "");
    const changed = force || !previous || !sameEvents(previous, view);
    const params = eventsParams(view);
    if (changed) {
      run("charts", (signal) => charts.load(view, signal));
      run("pages", (signal) => pages.load(view, params, signal));
      lists.load(params);
    } else {
      if (previous.bucket !== view.bucket) run("charts", (signal) => charts.loadNames(view, signal));
      if (previous.map !== view.map) run("pages", (signal) => pages.loadMap(view.map, params, signal));
    }
    if (changed || previous.session !== view.session) {
      if (view.session) run("timeline", (signal) => timeline.load(view.session, view.source, signal));
      else { controllers.timeline?.abort(); timeline.hide(); }
    }
  }

  // Typing: 300 ms after the last key, with one history entry per burst of typing.
  let debounce = null;
  function fromForm(field) {
    clearTimeout(debounce);
    debounce = setTimeout(() => {
      if (!validates()) return;
      const { view: next } = readEventsForm(view);
      const now = Date.now();
      const more = field && field === lastTyping.field && now - lastTyping.at < TYPING_MS;
      go(next, more ? "replace" : "push");
      lastTyping = { field, at: field ? now : 0 };
    }, field ? 300 : 0);
  }
  const form = $("ev-filters");
  form.addEventListener("input", (event) => fromForm(event.target.tagName === "INPUT" && event.target.type !== "checkbox" ? event.target.id : null));
  form.addEventListener("submit", (event) => { event.preventDefault(); fromForm(null); });
  form.addEventListener("reset", (event) => { event.preventDefault(); go({ ...emptyEventsView(), bucket: view.bucket }, "push"); });
  $("ev-bucket").addEventListener("change", () => go({ ...view, bucket: $("ev-bucket").value }, "push"));
  for (const button of document.querySelectorAll("#ev-ranges button")) {
    button.addEventListener("click", () => go({ ...view, range: button.dataset.range, since: "", until: "" }, "push"));
  }
  $("ev-more-filters").addEventListener("click", () => {
    const open = form.classList.toggle("open");
    $("ev-more-filters").setAttribute("aria-expanded", String(open));
  });

  return {
    /** Show the view of the URL's query string `search` (`force`: reload everything). */
    show(search, { force = false } = {}) {
      show(eventsViewFromURL(search), { force });
    },
    /** The URL of the view shown last (for the tab link). */
    url: () => location.pathname + eventsURLOf(view || emptyEventsView()),
    /** Redraw the canvases (a theme change, a resize). */
    redraw() {
      if (!view) return;
      charts.redraw();
      pages.redraw();
    },
    /** The display zone changed: times in the form, the lists, the timeline and the charts. */
    retime() {
      if (!view) return;
      fillEventsForm(view);
      lists.retime();
      timeline.retime();
      charts.redraw();
    },
  };
}
