// Completions for the Process and Logger inputs: GET /api/suggest (the user's own names
// starting with what is typed) fills the input's <datalist>. Requests go through the request
// gate of net.js, so an outage or a 429 waits and backs off instead of retrying per key; and
// the page has at most one of them in flight (a suggestion is never worth one of the user's
// few concurrent reads twice over): what is typed meanwhile is asked for when it ends.
"use strict";

import { api } from "./net.js";

const TYPING_MS = 250; // one request per pause in typing, not per key

let busy = false; // a suggestion request is in flight (for either input)
const waiting = new Set(); // loaders to run when it ends

/**
 * Complete `input` (field `process` or `logger` of /api/suggest) into `list`, a <datalist>;
 * `headers()` gives the signed-in user's authentication headers.
 */
export function attachSuggestions({ input, list, field, headers }) {
  let timer = null;
  let shown = null; // the user and prefix whose values the list holds

  async function load() {
    const prefix = input.value;
    const asked = JSON.stringify([headers()["X-User"], prefix]);
    if (asked === shown) return;
    if (busy) { waiting.add(load); return; }
    busy = true;
    try {
      const body = await api("/api/suggest", { field, prefix }, { headers: headers() });
      shown = asked;
      list.replaceChildren(...body.values.map((value) => {
        const option = document.createElement("option");
        option.value = value;
        return option;
      }));
    } catch (error) {
      shown = asked; // refused (400, or 403: net.js signs out): no completions, no retry
      list.replaceChildren();
    } finally {
      busy = false;
      const next = [...waiting];
      waiting.clear();
      for (const loader of next) loader();
    }
  }

  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(load, TYPING_MS);
  });
}
