// The record dialog: every field under the names the filters use (Process, Logger, PID),
// the message (JSON pretty-printed), copy as JSON, a permalink, and newer/older.
"use strict";

import { formatWire, zoneLabel } from "./times.js";

const $ = (id) => document.getElementById(id);

/** The fields in the order shown, with the filters' names. */
const LABELS = [
  ["id", "ID"],
  ["event_at", "Event time"],
  ["post_time", "Sent"],
  ["received_at", "Received"],
  ["level", "Level"],
  ["p_name", "Process"],
  ["p_description", "Logger"],
  ["pid", "PID"],
  ["msg_length", "Message length"],
];
const TIMES = new Set(["event_at", "post_time", "received_at"]);
/** Not shown: the owner is the signed-in user; "truncated" is said with the length. */
const HIDDEN = new Set(["msg", "level_name", "user_id", "truncated"]);

async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch (error) {
    // No clipboard permission (or no secure context): the old way, from a selected textarea.
    const area = document.createElement("textarea");
    area.value = text;
    $("detail").append(area);
    area.select();
    const done = document.execCommand("copy");
    area.remove();
    return done;
  }
}

/**
 * The dialog. `neighbour(id, delta)` resolves to the newer (-1) or older (+1) record or null;
 * `hasNeighbour(id, delta)` says whether to offer it; `permalink(record)` is its URL;
 * `onMove(record)` after newer/older; `onClose(record)` when the dialog closes.
 */
export function createDetail({ neighbour, hasNeighbour, permalink, onMove, onClose }) {
  const dialog = $("detail");
  let shown = null;

  function fill(record) {
    shown = record;
    dialog.dataset.id = record.id;
    $("detail-title").textContent = "Record " + record.id + " · " + record.level_name;
    const dl = $("detail-fields");
    dl.textContent = "";
    const known = new Set(LABELS.map(([key]) => key).concat([...HIDDEN]));
    const rows = LABELS.filter(([key]) => key in record).concat(
      Object.keys(record).filter((key) => !known.has(key)).map((key) => [key, key]),
    );
    for (const [key, label] of rows) {
      const dt = document.createElement("dt");
      const dd = document.createElement("dd");
      dt.textContent = label;
      let value = record[key];
      if (TIMES.has(key)) value = formatWire(value) + " " + zoneLabel();
      if (key === "level") value = record.level_name + " (" + value + ")";
      if (key === "msg_length") value = value + " characters" + (record.truncated ? " (truncated when stored)" : "");
      dd.textContent = String(value);
      dd.dataset.field = key;
      dl.append(dt, dd);
    }
    let text = String(record.msg);
    const trimmed = text.trim();
    if (trimmed.startsWith("{") || trimmed.startsWith("[")) {
      try { text = JSON.stringify(JSON.parse(trimmed), null, 2); } catch (error) { /* not JSON: as is */ }
    }
    $("detail-msg").textContent = text;
    $("detail-permalink").href = permalink(record);
    $("detail-prev").disabled = !hasNeighbour(record.id, -1);
    $("detail-next").disabled = !hasNeighbour(record.id, 1);
    $("detail-note").textContent = "";
  }

  async function step(delta) {
    if (!shown) return;
    const next = await neighbour(shown.id, delta);
    if (next) { fill(next); onMove(next); }
  }

  async function copy(text, what) {
    $("detail-note").textContent = (await copyText(text)) ? what + " copied." : "Could not copy.";
  }

  $("detail-prev").addEventListener("click", () => step(-1));
  $("detail-next").addEventListener("click", () => step(1));
  $("detail-copy").addEventListener("click", () => copy(JSON.stringify(shown, null, 2), "JSON"));
  $("detail-copy-link").addEventListener("click", () => copy(permalink(shown), "Link"));
  dialog.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.target.closest("input, textarea")) return;
    if (event.key === "j") { event.preventDefault(); step(1); }
    if (event.key === "k") { event.preventDefault(); step(-1); }
  });
  dialog.addEventListener("close", () => { const record = shown; shown = null; if (record) onClose(record); });

  return {
    /** Show `record` (the dialog opens if it was closed). */
    open(record) {
      fill(record);
      if (!dialog.open) dialog.showModal();
    },
    /** Close without telling `onClose` (the URL already says no record is open). */
    close() { shown = null; if (dialog.open) dialog.close(); },
    /** The id of the record shown, or null. */
    shownId: () => (shown ? shown.id : null),
    /** Redraw the times in the current display zone. */
    retime() { if (shown) fill(shown); },
  };
}
