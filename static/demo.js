// The demo page's own script (the "host page"): it works whether or not the tracker loaded,
// and shows what the tracker does. Custom events: window.tracker.track(name, data).
"use strict";

const $ = (id) => document.getElementById(id);
const key = document.querySelector("script[data-key]")?.dataset.key || "";
$("no-key").hidden = Boolean(key);

let count = 0;
$("count").addEventListener("click", () => {
  count += 1;
  $("count-value").textContent = String(count);
});
$("signup").addEventListener("click", () => window.tracker?.track("signup", { plan: "pro", count }));

function showState() {
  const session = window.tracker?.session;
  $("session").textContent = session || "none";
  $("tracker-state").textContent = !key ? "no key: not recording"
    : session ? "recording" : window.tracker ? "not recording (Do-Not-Track or GPC)" : "the tracker did not load";
}
window.addEventListener("load", showState);
showState();
