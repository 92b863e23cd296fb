// The live tail: GET /api/tail read with fetch and a stream reader (EventSource cannot send our
// headers). A lost connection waits for the server through the same back-off as every other
// call (net.js), resuming after the last record seen (Last-Event-ID).
"use strict";

import { isAbort, ready, reportDown, reportUp, retryAfter } from "./net.js";

const $ = (id) => document.getElementById(id);
const RECONNECT_MS = 1000;

const sleep = (ms, signal) => new Promise((resolve) => {
  const timer = setTimeout(resolve, ms);
  signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
});

/** Feed SSE text blocks to `onRecord(record)`; returns the last event id seen. */
async function read(response, onRecord, lastEventId) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return lastEventId;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let data = null;
      for (const line of block.split("\n")) {
        if (line.startsWith("id: ")) lastEventId = Number(line.slice(4));
        else if (line.startsWith("data: ")) data = line.slice(6);
      }
      if (data) onRecord(JSON.parse(data));
    }
  }
}

/**
 * Tail `params` (the API filters) from after record `afterId` (0: from now on); each record
 * goes to `onRecord`; `onForbidden()` on 403. Returns a function that stops the tail.
 */
export function startTail({ params, afterId, headers, onRecord, onForbidden }) {
  const controller = new AbortController();
  const { signal } = controller;
  const query = new URLSearchParams(params).toString();
  const state = $("live-state");
  let lastEventId = afterId;
  (async () => {
    while (!signal.aborted) {
      try {
        await ready(signal);
        // No Last-Event-ID before any record is known: the tail starts at the newest.
        const extra = lastEventId > 0 ? { "Last-Event-ID": String(lastEventId) } : {};
        const response = await fetch("/api/tail" + (query ? "?" + query : ""), { headers: { ...headers(), ...extra }, signal });
        if (response.status === 403) { onForbidden(); return; }
        if ([429, 502, 503, 504].includes(response.status)) {
          state.textContent = "reconnecting…";
          reportDown(response.status === 429 ? "busy" : "database", retryAfter(response));
          continue;
        }
        if (!response.ok) { state.textContent = "tail failed: HTTP " + response.status; return; }
        reportUp();
        state.textContent = "● live";
        lastEventId = await read(response, onRecord, lastEventId);
      } catch (error) {
        if (isAbort(error) || signal.aborted) return;
        state.textContent = "reconnecting…";
        reportDown("unreachable", 0);
        continue;
      }
      await sleep(RECONNECT_MS, signal); // the server ended the stream (a restart): come back
    }
  })();
  return () => { controller.abort(); state.textContent = ""; };
}
