// Completions for the Process and Logger inputs: GET /api/suggest (the user's own names
// starting with what is typed) fills the input's <datalist>. Requests go through the request
// gate of net.js, so an outage or a 429 waits and backs off instead of retrying per key.
"use strict";

import { api } from "./net.js";

const TYPING_MS = 250; // one request per pause in typing, not per key

/**
 * Complete `input` (field `process` or `logger` of /api/suggest) into `list`, a <datalist>;
 * `headers()` gives the signed-in user's authentication headers.
 */
export function attachSuggestions({ input, list, field, headers }) {
  let controller = null;
  let timer = null;
  let shown = null; // the prefix whose values the list holds

  async function load() {
    const prefix = input.value;
    if (prefix === shown) return;
    controller?.abort();
    const mine = (controller = new AbortController());
    try {
      const body = await api("/api/suggest", { field, prefix }, { headers: headers(), signal: mine.signal });
      shown = prefix;
      list.replaceChildren(...body.values.map((value) => {
        const option = document.createElement("option");
        option.value = value;
        return option;
      }));
    } catch (error) {
      // Aborted (a newer prefix), or refused (400, 403: net.js signs out): no completions.
      if (controller === mine) list.replaceChildren();
    }
  }

  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(load, TYPING_MS);
  });
  input.addEventListener("focus", () => { clearTimeout(timer); load(); });
}
