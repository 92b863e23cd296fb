// The Events tab's lists: sessions (newest first), events (newest first), and the session
// timeline (every event of one session, in the order they happened). Pages come from
// /api/sessions and /api/events with their keyset cursors. Text from events is only ever set
// with textContent (never parsed as HTML).
"use strict";

import { sessionParams } from "./events-view.js";
import { ApiError, api, isAbort } from "./net.js";
import { format, formatWire, parseWire } from "./times.js";

const $ = (id) => document.getElementById(id);
const PAGE = 100;
const TIMELINE_MAX = 10000; // events of one session shown at most
const GAP_MS = 30 * 60e3; // a pause this long is marked in the timeline

/**
 * Up to `maxPages` pages of `path` (`key`: the answer's list) with `params`, newest first:
 * `{items, complete}`; `complete` is false when more were left on the server.
 */
export async function fetchPages(path, key, params, { headers, signal, maxPages = 3, limit = 1000 }) {
  const items = [];
  let cursor = null;
  for (let page = 0; page < maxPages; page += 1) {
    const answer = await api(path, { ...params, limit, ...(cursor ? { cursor } : {}) }, { headers: headers(), signal });
    items.push(...answer[key]);
    cursor = answer.next_cursor;
    if (!cursor) return { items, complete: true };
  }
  return { items, complete: false };
}

const cell = (text, className) => {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (className) td.className = className;
  return td;
};

/** A link to the session `key` (of `source`) that `onSession` opens in place. */
function sessionLink(key, source, onSession) {
  const a = document.createElement("a");
  a.href = "/?tab=events&session=" + encodeURIComponent(key) + (source ? "&source=" + source : "");
  a.textContent = key;
  a.className = "session-link";
  a.addEventListener("click", (event) => {
    if (event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey) return;
    event.preventDefault();
    event.stopPropagation();
    onSession(key, source);
  });
  return a;
}

/** "4 min 12 s", "1 h 03 min", "2 d 4 h". */
export function duration(ms) {
  const s = Math.round(ms / 1000);
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + String(s % 60).padStart(2, "0") + " s";
  if (s < 86400) return Math.floor(s / 3600) + " h " + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + " min";
  return Math.floor(s / 86400) + " d " + Math.floor((s % 86400) / 3600) + " h";
}

const numberOf = (value) => (typeof value === "number" ? value : typeof value === "string" && value.trim() !== "" ? Number(value) : NaN);

/** Where a click was made, in percent of the viewport: `{x, y}` or null (tracker.js or WebSocket). */
export function clickPoint(event) {
  const data = event.data;
  if (!data || typeof data !== "object") return null;
  const x = numberOf(data.x ?? data.loc_x), y = numberOf(data.y ?? data.loc_y);
  return x >= 0 && x <= 100 && y >= 0 && y <= 100 ? { x, y } : null;
}

/** A one-line reading of an event's data, by kind of event. */
export function summary(event) {
  const data = event.data;
  if (data === null || data === undefined) return event.data_raw || "";
  if (typeof data !== "object" || Array.isArray(data)) return JSON.stringify(data);
  const point = clickPoint(event);
  if (point) return "x " + point.x + "%, y " + point.y + "%" + (data.el ? " · " + data.el : "");
  if (event.name === "scroll" && "depth" in data) return "deepest " + data.depth + "%";
  if (event.name === "visibility" && data.state) return data.state;
  if (event.name === "scenario" && Array.isArray(data.path)) {
    return (data.app ? data.app + ": " : "") + data.path.join(" → ") + (data.ended ? " (ended: " + data.ended + ")" : "");
  }
  if (event.name === "page_view" && "title" in data) return data.title + (data.referrer ? " · from " + data.referrer : "");
  return JSON.stringify(data);
}

/** A keyset-paged table with a "More" button: `rowOf(item)` makes a row. */
function pagedTable({ table, button, path, key, rowOf, note }) {
  const body = $(table).tBodies[0];
  const state = { params: null, cursor: null, controller: null };

  async function more() {
    const { signal } = state.controller;
    $(button).disabled = true;
    try {
      const params = { ...state.params, limit: PAGE, ...(state.cursor ? { cursor: state.cursor } : {}) };
      const answer = await api(path, params, { headers: state.headers(), signal });
      for (const item of answer[key]) body.append(rowOf(item));
      state.cursor = answer.next_cursor;
      $(button).hidden = !state.cursor;
      note?.(body.rows.length, !state.cursor);
    } catch (error) {
      if (isAbort(error) || signal.aborted) return;
      if (error instanceof ApiError) note?.(body.rows.length, true, error.message);
    } finally {
      $(button).disabled = false;
    }
  }
  $(button).addEventListener("click", more);

  return {
    /** Start again with `params` (the first page). */
    load(params, headers) {
      state.controller?.abort();
      state.controller = new AbortController();
      state.params = params;
      state.headers = headers;
      state.cursor = null;
      body.textContent = "";
      $(button).hidden = true;
      return more();
    },
    retime() {
      for (const td of body.querySelectorAll("td[data-at]")) td.textContent = formatWire(td.dataset.at);
    },
  };
}

/** The sessions and events lists; `onSession(key, source)` opens a session's timeline. */
export function createLists({ headers, onSession }) {
  const timed = (iso) => {
    const td = cell(iso ? formatWire(iso) : "", "time");
    if (iso) td.dataset.at = iso;
    return td;
  };

  const sessions = pagedTable({
    table: "ev-sessions",
    button: "ev-sessions-more",
    path: "/api/sessions",
    key: "sessions",
    rowOf(s) {
      const tr = document.createElement("tr");
      tr.dataset.session = s.session;
      const link = cell("");
      link.append(sessionLink(s.session, s.source, onSession));
      // From the first event's client time (the server opens the session when it arrives).
      const start = parseWire(s.started_client_at || s.started_at);
      const end = s.stopped_at ? parseWire(s.stopped_client_at || s.stopped_at) : s.last_event_at ? parseWire(s.last_event_at) : start;
      tr.append(timed(s.started_at), cell(s.source), link, cell(s.event_count, "num"),
        cell(s.last_event_name || ""), cell(duration(Math.max(0, end - start))), cell(s.user_agent || s.ip || "", "ua"));
      tr.addEventListener("click", () => onSession(s.session, s.source));
      return tr;
    },
  });

  const events = pagedTable({
    table: "ev-list",
    button: "ev-list-more",
    path: "/api/events",
    key: "events",
    note: (count, all, error) => {
      $("ev-list-note").textContent = error ? "· " + error : count ? "· " + count + " shown" + (all ? " (all)" : "") : "· none match";
    },
    rowOf(e) {
      const tr = document.createElement("tr");
      tr.dataset.id = e.id;
      const time = timed(e.event_at);
      if (!e.time_valid) {
        time.classList.add("invalid");
        time.title = "client time " + JSON.stringify(e.client_time) + " is invalid: shown at its receive time";
      }
      const session = cell("");
      if (e.session) session.append(sessionLink(e.session, e.source, onSession));
      const data = cell(summary(e), "data");
      data.title = e.data === null ? e.data_raw || "" : JSON.stringify(e.data, null, 1).slice(0, 2000);
      tr.append(time, cell(e.source), session, cell(e.name, "name"), cell(e.category), cell(e.page), data);
      return tr;
    },
  });

  return {
    load(params) {
      sessions.load(sessionParams(params), headers);
      return events.load(params, headers);
    },
    retime() {
      sessions.retime();
      events.retime();
    },
  };
}

/** Events of one session in the order they happened: time, then the client's sequence, then arrival. */
export function inOrder(events) {
  const seq = (e) => (e.sequence === null || e.sequence === undefined ? Infinity : e.sequence);
  return [...events].sort((a, b) => parseWire(a.event_at) - parseWire(b.event_at) || seq(a) - seq(b) || a.id - b.id);
}

/** The session timeline (shown while the view names a session). */
export function createTimeline({ headers }) {
  let shown = [], whole = true;

  function render(events, key, complete) {
    const list = $("ev-timeline-list");
    list.textContent = "";
    $("ev-timeline-key").textContent = key;
    shown = inOrder(events);
    whole = complete;
    if (!shown.length) {
      $("ev-timeline-sum").textContent = "· no events";
      return;
    }
    const first = parseWire(shown[0].event_at), last = parseWire(shown[shown.length - 1].event_at);
    const sources = [...new Set(shown.map((e) => e.source))].join(", ");
    $("ev-timeline-sum").textContent = "· " + shown.length + (complete ? "" : "+") + " events · " + sources + " · " + duration(last - first);
    let previous = first;
    for (const e of shown) {
      const at = parseWire(e.event_at);
      if (at - previous >= GAP_MS) {
        const gap = document.createElement("li");
        gap.className = "gap";
        gap.textContent = duration(at - previous) + " later";
        list.append(gap);
      }
      previous = at;
      const li = document.createElement("li");
      li.dataset.id = e.id;
      li.dataset.name = e.name;
      li.dataset.at = e.event_at;
      if (e.sequence !== null) li.dataset.sequence = e.sequence;
      const when = document.createElement("span");
      when.className = "when";
      when.textContent = format(at, "ms").slice(11);
      when.title = format(at);
      const offset = document.createElement("span");
      offset.className = "offset";
      offset.textContent = "+" + ((at - first) / 1000).toFixed(1) + " s";
      const name = document.createElement("span");
      name.className = "ev-name" + (e.source === "stats" ? " ws" : "");
      name.textContent = e.name;
      const page = document.createElement("span");
      page.className = "page";
      page.textContent = e.page || "";
      const what = document.createElement("span");
      what.className = "what";
      what.textContent = summary(e);
      li.append(when, offset, name, page, what);
      list.append(li);
    }
  }

  return {
    /** Load and show every event of session `key` (of `source` when given). */
    async load(key, source, signal) {
      $("ev-timeline").hidden = false;
      $("ev-timeline-sum").textContent = "· loading…";
      const params = { session: key, order: "asc", ...(source ? { source } : {}) };
      try {
        const { items, complete } = await fetchPages("/api/events", "events", params, { headers, signal, maxPages: TIMELINE_MAX / 1000 });
        render(items, key, complete);
      } catch (error) {
        if (isAbort(error) || signal.aborted) return;
        if (error instanceof ApiError) $("ev-timeline-sum").textContent = "· " + error.message;
      }
    },
    hide() {
      $("ev-timeline").hidden = true;
      shown = [];
    },
    retime() {
      if (!$("ev-timeline").hidden && shown.length) render(shown, $("ev-timeline-key").textContent, whole);
    },
  };
}
