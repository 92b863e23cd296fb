// Talking to the server without ever hammering it.
//
// Every API call goes through `api()`. When the server cannot be reached, or answers 503
// (database away), 502/504 or 429, the call does not fail: it waits. One "gate" for the whole
// tab then probes GET /healthz after an exponential back-off with jitter (2 s, 4 s, 8 s, ...
// at most 60 s, and never sooner than the server's Retry-After), shows a banner with a
// countdown, and lets every waiting call through once the server answers again. However many
// calls are waiting, a tab sends one probe per back-off step. A 400 never retries: it is
// thrown to the caller, which shows it.
"use strict";

export const FIRST_DELAY_MS = 2000;
export const MAX_DELAY_MS = 60000;
const RETRYABLE = new Set([429, 502, 503, 504]);

/** An answer that retrying will not change (400, 403, 404, 500, ...). */
export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

/**
 * Milliseconds to wait before try number `attempt` (0-based): 2^attempt * 2 s capped at 60 s,
 * of which a random half ("equal jitter", so that many tabs do not come back in step), and
 * never less than `retryAfterSeconds`.
 */
export function backoff(attempt, retryAfterSeconds) {
  const base = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** Math.min(attempt, 10));
  const jittered = base / 2 + Math.random() * (base / 2);
  return Math.max(jittered, (retryAfterSeconds || 0) * 1000);
}

/** Retry-After in seconds (delta-seconds or an HTTP date), or 0. */
export function retryAfter(response) {
  const value = response.headers.get("Retry-After");
  if (!value) return 0;
  if (/^\d+$/.test(value.trim())) return Number(value);
  const date = Date.parse(value);
  return Number.isNaN(date) ? 0 : Math.max(0, (date - Date.now()) / 1000);
}

const REASONS = {
  unreachable: "Server unreachable",
  database: "The database is unavailable",
  busy: "The server is busy",
};

const gate = { down: false, attempt: 0, retryAt: 0, reason: "", timer: null, tick: null, waiters: new Set() };
let banner = null;
let forbidden = () => {};

/** Call `handler()` whenever the server refuses the credentials (403). */
export function onForbidden(handler) {
  forbidden = handler;
}

/** Show the gate's state in `element` (its `.text` child and `.retry` button). */
export function attachBanner(element) {
  banner = element;
  element.querySelector(".retry").addEventListener("click", () => {
    if (gate.down) { clearTimeout(gate.timer); probe(); }
  });
}

function paint() {
  if (!banner) return;
  banner.hidden = !gate.down;
  if (!gate.down) return;
  const seconds = Math.max(0, Math.ceil((gate.retryAt - Date.now()) / 1000));
  banner.querySelector(".text").textContent =
    REASONS[gate.reason] + (gate.retryAt ? ", retrying in " + seconds + " s" : ", retrying now…");
  banner.dataset.reason = gate.reason;
}

function schedule(reason, afterSeconds) {
  const delay = backoff(gate.attempt, afterSeconds);
  gate.attempt += 1;
  gate.reason = reason;
  gate.retryAt = Date.now() + delay;
  gate.timer = setTimeout(probe, delay);
  clearInterval(gate.tick);
  gate.tick = setInterval(paint, 1000); // the countdown only: no request
  paint();
}

async function probe() {
  gate.retryAt = 0;
  paint();
  let response;
  try {
    response = await fetch("/healthz", { cache: "no-store" });
  } catch (error) {
    schedule("unreachable", 0);
    return;
  }
  if (!response.ok) {
    schedule(response.status === 429 ? "busy" : "database", retryAfter(response));
    return;
  }
  open();
}

function open() {
  gate.down = false;
  clearTimeout(gate.timer);
  clearInterval(gate.tick);
  paint();
  const waiters = [...gate.waiters];
  gate.waiters.clear();
  for (const resolve of waiters) resolve();
}

/** The server failed to answer (`reason`: unreachable, database, busy): start probing. */
export function reportDown(reason, afterSeconds) {
  if (gate.down) return; // one probe schedule for the whole tab
  gate.down = true;
  schedule(reason, afterSeconds);
}

/** A real answer arrived: the next outage starts its back-off from the beginning. */
export function reportUp() {
  gate.attempt = 0;
  if (gate.down) open();
}

/** Resolves at once when the server is up, else once a probe succeeds; rejects on abort. */
export function ready(signal) {
  if (signal?.aborted) return Promise.reject(signal.reason);
  if (!gate.down) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const done = () => { signal?.removeEventListener("abort", abort); resolve(); };
    const abort = () => { gate.waiters.delete(done); reject(signal.reason); };
    gate.waiters.add(done);
    signal?.addEventListener("abort", abort, { once: true });
  });
}

/** Whether a fetch error is our own cancellation (not an outage). */
export const isAbort = (error) => error?.name === "AbortError";

/**
 * GET `path` with `params` and `headers`; the parsed JSON body. Waits out outages (see the
 * top of this file); throws `ApiError` for any other failure and the abort reason on abort.
 */
export async function api(path, params, { headers = {}, signal } = {}) {
  const query = new URLSearchParams(params || {}).toString();
  for (;;) {
    await ready(signal);
    let response;
    try {
      response = await fetch(path + (query ? "?" + query : ""), { headers, signal });
    } catch (error) {
      if (isAbort(error) || signal?.aborted) throw error;
      reportDown("unreachable", 0);
      continue;
    }
    if (RETRYABLE.has(response.status)) {
      reportDown(response.status === 429 ? "busy" : "database", retryAfter(response));
      continue;
    }
    reportUp();
    let body = null;
    try { body = await response.json(); } catch (error) { if (isAbort(error)) throw error; }
    if (response.status === 403) forbidden();
    if (!response.ok) {
      throw new ApiError(body?.detail || body?.message || "HTTP " + response.status, response.status);
    }
    return body;
  }
}
