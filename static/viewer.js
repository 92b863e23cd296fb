// The log viewer: sign in, filter, search, scroll, tail and chart one user's own logs.
// Plain JavaScript, no library: every byte comes from this server. Text from records is
// only ever set with textContent (never parsed as HTML).
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const PAGE = 200;
  const COLOURS = { debug: "#8a94a6", info: "#2f6fd0", warning: "#c98a00", error: "#d03a2f", critical: "#8e24aa", other: "#138a8a" };

  const state = { cursor: null, loading: false, done: false, ids: new Set(), generation: 0, tail: null, lastId: 0 };

  // -- session -------------------------------------------------------------------------
  const credentials = () => {
    try { return JSON.parse(sessionStorage.getItem("bls.credentials") || "null"); } catch (e) { return null; }
  };
  // HTTP header values are bytes: send the name as its UTF-8 bytes (the server decodes
  // them), so that any user name, emoji included, can sign in.
  const wireName = (name) => String.fromCharCode(...new TextEncoder().encode(name));
  const authHeaders = (user, token) => ({ "X-User": wireName(user), "X-User-Token": token });
  const headers = () => {
    const c = credentials();
    return c ? authHeaders(c.user, c.token) : {};
  };

  async function api(path, params) {
    const query = new URLSearchParams(params || {}).toString();
    const response = await fetch(path + (query ? "?" + query : ""), { headers: headers() });
    if (response.status === 403) { signOut("Signed out: the user or token was refused."); throw new Error("forbidden"); }
    const body = await response.json();
    if (!response.ok) throw new Error(body.detail || body.message || ("HTTP " + response.status));
    return body;
  }

  function showSignIn(message) {
    $("app").hidden = true;
    $("signin").hidden = false;
    $("signin-error").textContent = message || "";
    $("signin-user").focus();
  }

  function signOut(message) {
    stopTail();
    $("live").checked = false;
    sessionStorage.removeItem("bls.credentials");
    showSignIn(message);
  }

  $("signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const user = $("signin-user").value.trim();
    const token = $("signin-token").value.trim();
    const response = await fetch("/api/logs?limit=1", { headers: authHeaders(user, token) });
    if (!response.ok) {
      $("signin-error").textContent = response.status === 403 ? "Wrong user or token." : "The server answered " + response.status + ".";
      return;
    }
    sessionStorage.setItem("bls.credentials", JSON.stringify({ user, token }));
    $("signin-token").value = "";
    start();
  });
  $("signout").addEventListener("click", () => signOut(""));

  // -- filters -------------------------------------------------------------------------
  function filters() {
    const out = {};
    for (const name of ["level", "q", "p_name", "p_description", "pid"]) {
      const value = $("filter-" + name).value.trim();
      if (value) out[name] = value;
    }
    for (const name of ["since", "until"]) {
      const value = $("filter-" + name).value;
      if (value) out[name] = value + "Z"; // the inputs are in UTC
    }
    return out;
  }

  let debounce = null;
  const refreshSoon = () => { clearTimeout(debounce); debounce = setTimeout(refresh, 300); };
  $("filters").addEventListener("input", refreshSoon);
  $("filters").addEventListener("submit", (event) => { event.preventDefault(); refresh(); });
  $("filters").addEventListener("reset", () => setTimeout(refresh, 0));
  $("bucket").addEventListener("change", drawStats);

  // -- table ---------------------------------------------------------------------------
  const levelKind = (level) =>
    level >= 50 ? "critical" : level >= 40 ? "error" : level >= 30 ? "warning" : level >= 20 ? "info" : "debug";
  const shortTime = (iso) => iso.replace("T", " ").replace("Z", "").slice(0, 23);

  function row(record) {
    const tr = document.createElement("tr");
    const kind = levelKind(record.level);
    tr.dataset.id = record.id;
    tr.className = "row-" + kind;
    const cells = [shortTime(record.event_at), null, record.p_name, record.p_description, record.pid, record.msg];
    cells.forEach((value, i) => {
      const td = document.createElement("td");
      if (i === 1) {
        const badge = document.createElement("span");
        badge.className = "level lvl-" + kind;
        badge.textContent = record.level_name;
        td.append(badge);
      } else {
        td.textContent = String(value);
        td.title = i === 5 ? String(value).slice(0, 500) : "";
      }
      if (i === 5) td.className = "msg";
      tr.append(td);
    });
    tr.addEventListener("click", () => openDetail(record));
    return tr;
  }

  function status() {
    const count = $("logs").tBodies[0].rows.length;
    $("status").textContent = count ? count + " records shown" + (state.done ? " (all)" : "") : "No records match.";
  }

  async function loadMore() {
    if (state.loading || state.done) return;
    state.loading = true;
    const generation = state.generation;
    $("more").textContent = "Loading…";
    try {
      const params = { ...filters(), limit: PAGE };
      if (state.cursor) params.cursor = state.cursor;
      const page = await api("/api/logs", params);
      if (generation !== state.generation) return; // the filters changed meanwhile
      const body = $("logs").tBodies[0];
      for (const record of page.logs) {
        if (state.ids.has(record.id)) continue;
        state.ids.add(record.id);
        state.lastId = Math.max(state.lastId, record.id);
        body.append(row(record));
      }
      state.cursor = page.next_cursor;
      state.done = page.next_cursor === null;
      status();
    } catch (error) {
      $("status").textContent = "Could not load: " + error.message;
    } finally {
      if (generation === state.generation) {
        state.loading = false;
        $("more").textContent = state.done ? "" : "Scroll for more";
        // Fill the screen: keep loading while the end is visible.
        if (!state.done && $("more").getBoundingClientRect().top < window.innerHeight) loadMore();
      }
    }
  }

  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting) && !$("app").hidden) loadMore();
  }).observe($("more"));

  function refresh() {
    state.generation += 1;
    state.cursor = null;
    state.done = false;
    state.loading = false;
    state.ids.clear();
    $("logs").tBodies[0].textContent = "";
    loadMore();
    drawStats();
    if ($("live").checked) startTail();
  }

  // -- detail --------------------------------------------------------------------------
  function openDetail(record) {
    $("detail-title").textContent = "Record " + record.id + " · " + record.level_name;
    const dl = $("detail-fields");
    dl.textContent = "";
    for (const [key, value] of Object.entries(record)) {
      if (key === "msg") continue;
      const dt = document.createElement("dt");
      const dd = document.createElement("dd");
      dt.textContent = key;
      dd.textContent = String(value);
      dl.append(dt, dd);
    }
    let text = record.msg;
    const trimmed = text.trim();
    if (trimmed.startsWith("{") || trimmed.startsWith("[")) {
      try { text = JSON.stringify(JSON.parse(trimmed), null, 2); } catch (e) { /* not JSON: as is */ }
    }
    $("detail-msg").textContent = text;
    $("detail").showModal();
  }

  // -- histogram -----------------------------------------------------------------------
  const BUCKET_MS = { minute: 60e3, hour: 3600e3, day: 86400e3 };
  const BARS = 120;

  // What to ask /api/stats for. Without a "since" filter, only the last BARS buckets (what
  // the chart draws): the server then counts days of records, not the whole history. When
  // that window is empty, one more try per day over everything.
  function statsRequests(params) {
    let bucket = $("bucket").value;
    if (bucket === "auto") {
      bucket = "hour";
      if (params.since) {
        const span = (params.until ? Date.parse(params.until) : Date.now()) - Date.parse(params.since);
        bucket = span <= 6 * 3600e3 ? "minute" : span <= 14 * 86400e3 ? "hour" : "day";
      }
    }
    if (params.since) return [{ ...params, bucket }];
    const end = params.until ? Date.parse(params.until) : Date.now();
    const since = new Date(end - BARS * BUCKET_MS[bucket]).toISOString().slice(0, 19) + "Z";
    return [{ ...params, bucket, since }, { ...params, bucket: "day" }];
  }

  let statsGeneration = 0;
  async function drawStats() {
    const generation = ++statsGeneration;
    let body = null;
    let bucket = null;
    for (const request of statsRequests(filters())) {
      try { body = await api("/api/stats", request); } catch (e) { return; }
      bucket = request.bucket;
      if (body.counts.length) break;
    }
    if (generation !== statsGeneration) return;
    const byStart = new Map();
    const kinds = new Set();
    for (const c of body.counts) {
      const kind = levelKind(c.level);
      kinds.add(kind);
      if (!byStart.has(c.start)) byStart.set(c.start, {});
      const bar = byStart.get(c.start);
      bar[kind] = (bar[kind] || 0) + c.count;
    }
    const starts = [...byStart.keys()].sort().slice(-BARS);
    const canvas = $("histogram");
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth, height = canvas.clientHeight;
    canvas.width = width * ratio;
    canvas.height = height * ratio;
    const ctx = canvas.getContext("2d");
    ctx.scale(ratio, ratio);
    ctx.clearRect(0, 0, width, height);
    ctx.font = "11px system-ui, sans-serif";
    ctx.fillStyle = "#6b7585";
    canvas.dataset.bars = String(starts.length);
    canvas.dataset.total = String(body.counts.reduce((sum, c) => sum + c.count, 0));
    if (!starts.length) { ctx.fillText("No records", 10, 20); renderLegend(kinds); return; }
    const order = ["debug", "info", "warning", "error", "critical", "other"];
    const max = Math.max(...starts.map((s) => Object.values(byStart.get(s)).reduce((a, b) => a + b, 0)));
    const top = 14, bottom = 16, left = 4;
    const plot = height - top - bottom;
    const slot = Math.min(36, (width - left * 2) / starts.length); // a few buckets stay narrow
    starts.forEach((start, i) => {
      let y = height - bottom;
      for (const kind of order) {
        const count = byStart.get(start)[kind] || 0;
        if (!count) continue;
        const h = Math.max(1, (count / max) * plot);
        ctx.fillStyle = COLOURS[kind];
        ctx.fillRect(left + i * slot + slot * 0.1, y - h, Math.max(1, slot * 0.8), h);
        y -= h;
      }
    });
    ctx.fillStyle = "#6b7585";
    ctx.fillText("max " + max + " per " + bucket, left, 11);
    ctx.fillText(shortTime(starts[0]).slice(0, 16), left, height - 3);
    const last = shortTime(starts[starts.length - 1]).slice(0, 16);
    ctx.fillText(last, width - left - ctx.measureText(last).width, height - 3);
    renderLegend(kinds);
  }

  function renderLegend(kinds) {
    const legend = $("legend");
    legend.textContent = "";
    for (const kind of ["debug", "info", "warning", "error", "critical", "other"]) {
      if (!kinds.has(kind)) continue;
      const span = document.createElement("span");
      const swatch = document.createElement("i");
      swatch.style.background = COLOURS[kind];
      span.append(swatch, kind);
      legend.append(span);
    }
  }

  // -- live tail (fetch + a stream reader: EventSource cannot send our headers) ----------
  function stopTail() {
    if (state.tail) state.tail.abort();
    state.tail = null;
    $("live-state").textContent = "";
  }

  function startTail() {
    stopTail();
    const controller = new AbortController();
    state.tail = controller;
    const params = new URLSearchParams(filters()).toString();
    let lastEventId = state.lastId;
    const connect = async () => {
      while (!controller.signal.aborted) {
        try {
          const response = await fetch("/api/tail" + (params ? "?" + params : ""), {
            // No Last-Event-ID before any record is known: the tail starts at the newest.
            headers: lastEventId > 0 ? { ...headers(), "Last-Event-ID": String(lastEventId) } : headers(),
            signal: controller.signal,
          });
          if (response.status === 403) { signOut("Signed out: the user or token was refused."); return; }
          if (!response.ok) throw new Error("HTTP " + response.status);
          $("live-state").textContent = "● live";
          const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
          let buffer = "";
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
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
              if (data) addLive(JSON.parse(data));
            }
          }
        } catch (error) {
          if (controller.signal.aborted) return;
          $("live-state").textContent = "reconnecting…";
        }
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    };
    connect();
  }

  function addLive(record) {
    if (state.ids.has(record.id)) return;
    state.ids.add(record.id);
    state.lastId = Math.max(state.lastId, record.id);
    const body = $("logs").tBodies[0];
    const tr = row(record);
    tr.classList.add("fresh");
    // Newest first: a live record goes above every older one.
    let before = body.firstChild;
    while (before && Number(before.dataset.id) > record.id) before = before.nextSibling;
    body.insertBefore(tr, before);
    status();
    clearTimeout(addLive.chart);
    addLive.chart = setTimeout(drawStats, 1000);
  }

  $("live").addEventListener("change", () => ($("live").checked ? startTail() : stopTail()));

  // -- export --------------------------------------------------------------------------
  async function download(format) {
    const query = new URLSearchParams({ ...filters(), format }).toString();
    const response = await fetch("/api/logs/export?" + query, { headers: headers() });
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

  // -- start ---------------------------------------------------------------------------
  function start() {
    const c = credentials();
    if (!c) { showSignIn(""); return; }
    $("whoami").textContent = "as " + c.user;
    $("signin").hidden = true;
    $("app").hidden = false;
    refresh();
  }

  let resizing = null;
  window.addEventListener("resize", () => { clearTimeout(resizing); resizing = setTimeout(drawStats, 200); });
  start();
})();
