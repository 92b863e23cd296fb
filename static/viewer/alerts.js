// The alerts panel: the signed-in user's alert rules and how their deliveries go
// (GET /api/alerts), so that a failing Telegram chat or webhook shows where the logs are read.
//
// Self-contained: the page loads this module with its own <script> tag; it adds a folded
// section above the records, and refreshes it every 30 s while the viewer is shown (the
// section appears only when the user has rules). Calls go through net.js, so an outage is
// waited out like every other call, and a refused token signs out as everywhere.
"use strict";

import { api, isAbort } from "./net.js";
import { credentials, headers } from "./session.js";

const REFRESH_MS = 30000;
const STATUS = { sent: "sent", retrying: "retrying", failed: "failed" };

let timer = null;
let controller = null;

function panel() {
  let section = document.getElementById("alerts");
  if (section) return section;
  const style = document.createElement("link");
  style.rel = "stylesheet";
  style.href = "/static/viewer/alerts.css";
  document.head.append(style);
  section = document.createElement("details");
  section.id = "alerts";
  section.className = "alerts";
  section.hidden = true;
  section.innerHTML =
    '<summary><strong>Alerts</strong> <span class="alerts-summary muted"></span></summary>' +
    '<table><thead><tr><th>Rule</th><th>To</th><th>Last delivery</th><th>Pending</th>' +
    "<th>Last error</th></tr></thead><tbody></tbody></table>";
  document.getElementById("status").before(section);
  return section;
}

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function when(iso) {
  return iso ? iso.slice(0, 19).replace("T", " ") + " UTC" : "";
}

/** Show `alerts` (the answer's list) in the panel. */
export function render(alerts) {
  const section = panel();
  section.hidden = alerts.length === 0;
  const body = section.querySelector("tbody");
  body.replaceChildren();
  let troubled = 0;
  for (const alert of alerts) {
    const row = body.insertRow();
    row.dataset.id = alert.id;
    cell(row, alert.description);
    cell(row, alert.channel === "webhook" ? alert.url : "Telegram");
    const status = STATUS[alert.last_status] || "never";
    const last = cell(row, status + (alert.last_attempt_at ? " · " + when(alert.last_attempt_at) : ""),
                      "alert-status " + status);
    last.title = alert.last_sent_at ? "last sent " + when(alert.last_sent_at) : "never sent";
    cell(row, String(alert.pending), "num");
    cell(row, alert.last_error || "", "alert-error");
    if (alert.last_status === "retrying" || alert.last_status === "failed") troubled += 1;
  }
  section.classList.toggle("troubled", troubled > 0);
  section.querySelector(".alerts-summary").textContent =
    alerts.length + (alerts.length === 1 ? " rule" : " rules") +
    (troubled ? ", " + troubled + " failing" : "");
}

async function refresh() {
  if (!credentials()) return;
  controller?.abort();
  controller = new AbortController();
  try {
    const answer = await api("/api/alerts", null, { headers: headers(), signal: controller.signal });
    render(answer.alerts);
  } catch (error) {
    if (!isAbort(error)) panel().hidden = true; // signed out, or the endpoint is not there
  }
}

function start() {
  stop();
  refresh();
  timer = setInterval(() => { if (!document.hidden) refresh(); }, REFRESH_MS);
}

function stop() {
  clearInterval(timer);
  timer = null;
  controller?.abort();
  const section = document.getElementById("alerts");
  if (section) section.hidden = true;
}

// The viewer shows #app once signed in and hides it on signing out.
const app = document.getElementById("app");
if (app) {
  new MutationObserver(() => (app.hidden ? stop() : start())).observe(app, {
    attributes: true,
    attributeFilter: ["hidden"],
  });
  if (!app.hidden) start();
}
