/*! tracker.js: usage events for bot-logging-server (docs/API.md, "The tracker").
 *
 *   <script src="https://logs.example.com/tracker.js" data-key="INGEST_KEY" async></script>
 *
 * Records page views, clicks (x/y in percent of the viewport and a short element path), the
 * deepest scroll of each page, visibility changes, and custom events:
 *
 *   window.tracker.track("signup", {plan: "pro"});
 *
 * Events are batched to POST /api/events on the script's own origin (data-endpoint to change
 * it), with fetch(keepalive), retried with back-off; what is left when the page is hidden
 * leaves with navigator.sendBeacon. The session id lives in sessionStorage (one per tab).
 * With data-respect-dnt, nothing is recorded when Do-Not-Track or Global Privacy Control is
 * on. No dependency, no cookie, and nothing here ever throws into the page.
 */
(function (w, d, nav) {
  "use strict";

  var BATCH = 50; // events per request (the server takes up to 1000)
  var MAX_QUEUE = 500; // beyond this, the oldest events are dropped (never unbounded)
  var WAIT_MS = 1000; // events wait this long to travel together
  var MAX_BACKOFF_MS = 60000;

  // Every entry point goes through this: an error in here never reaches the host page.
  function safe(fn) {
    return function () {
      try {
        return fn.apply(this, arguments);
      } catch (e) {
        /* swallowed on purpose */
      }
    };
  }

  function off() {
    w.tracker = { track: function () {}, flush: function () {}, session: null };
  }

  function hex(bytes) {
    var a = new Uint8Array(bytes), out = "", i;
    try {
      w.crypto.getRandomValues(a);
    } catch (e) {
      for (i = 0; i < bytes; i++) a[i] = Math.random() * 256;
    }
    for (i = 0; i < bytes; i++) out += (a[i] + 256).toString(16).slice(1);
    return out;
  }

  function get(key) {
    try {
      return w.sessionStorage.getItem(key);
    } catch (e) {
      return null; // storage off (privacy mode, sandboxed frame): one session per page
    }
  }

  function set(key, value) {
    try {
      w.sessionStorage.setItem(key, value);
    } catch (e) {
      /* as above */
    }
  }

  var round = function (n) {
    return Math.round(n * 10) / 10;
  };

  // "main>section.hero>button#buy": tag, first class, id; stops at an id or after 5 levels.
  function path(el) {
    var out = [], n = 0, part, cls;
    while (el && el.nodeType === 1 && n++ < 5) {
      part = el.tagName.toLowerCase();
      if (el.id) {
        out.unshift(part + "#" + el.id);
        break;
      }
      cls = typeof el.className === "string" && el.className.trim().split(/\s+/)[0];
      out.unshift(cls ? part + "." + cls : part);
      if (part === "body") break;
      el = el.parentElement;
    }
    return out.join(">").slice(0, 200);
  }

  var pending = w.tracker && w.tracker.q; // calls made before this script arrived
  off(); // until set up (and for good if setting up fails): tracker.track() is safe to call
  safe(function () {
    var script = d.currentScript, key = script && script.getAttribute("data-key");
    var privacy = nav.doNotTrack === "1" || w.doNotTrack === "1" || nav.globalPrivacyControl === true;
    if (!key || (script.hasAttribute("data-respect-dnt") && privacy)) return;
    var endpoint = script.getAttribute("data-endpoint") || new URL(script.src).origin + "/api/events";
    var url = endpoint + (endpoint.indexOf("?") < 0 ? "?" : "&") + "key=" + encodeURIComponent(key);
    var sid = get("trk.sid") || hex(12), seq = +get("trk.seq") || 0;
    set("trk.sid", sid);
    var queue = [], batch = null, busy = false, attempt = 0, timer = 0;
    var depth = 0, sentDepth = 0, measuring = 0;

    // Integers past 2^53 travel as text: one odd value must not get the whole batch refused.
    function json(value) {
      return JSON.stringify(value, function (k, v) {
        return typeof v === "number" && Math.abs(v) > 9e15 ? String(v) : v;
      });
    }
    var body = function (events) {
      return json({ events: events });
    };

    function add(name, data, category) {
      var e = { name: String(name).slice(0, 255) || "event", session: sid, page: location.pathname.slice(0, 2048) };
      e.time = new Date().toISOString();
      e.sequence = ++seq;
      set("trk.seq", seq);
      if (category) e.category = category;
      if (data !== undefined && data !== null) e.data = data;
      queue.push(e);
      if (queue.length > MAX_QUEUE) queue.splice(0, queue.length - MAX_QUEUE);
      later(queue.length >= BATCH ? 0 : WAIT_MS);
    }

    function later(ms) {
      if (!timer && !busy) timer = setTimeout(safe(flush), ms);
    }

    function retry(after) {
      busy = false;
      attempt++;
      var ms = Math.min(MAX_BACKOFF_MS, 1000 * Math.pow(2, attempt));
      timer = setTimeout(safe(flush), Math.max(ms / 2 + (Math.random() * ms) / 2, after * 1000 || 0));
    }

    // One request at a time, so batches arrive in order; a failed batch keeps its
    // Idempotency-Key when retried, so a server that saw it once stores it once.
    function flush() {
      timer = 0;
      if (busy) return;
      if (!batch) {
        if (!queue.length) return;
        batch = { id: hex(16), events: queue.splice(0, BATCH) };
      }
      var sent = batch, text = body(sent.events), request;
      busy = true;
      try {
        request = w.fetch(url, {
          method: "POST",
          keepalive: text.length < 60000, // the browser's keepalive budget is 64 KB
          headers: { "Content-Type": "application/json", "Idempotency-Key": sent.id },
          body: text,
        });
        request
          .then(
            safe(function (r) {
              if (r.status === 429 || r.status >= 500) return retry(+r.headers.get("Retry-After"));
              // Done, stored or refused: a 4xx other than 429 would be refused again.
              if (batch === sent) batch = null;
              busy = false;
              attempt = 0;
              if (queue.length) later(0);
            }),
            safe(function () {
              retry(0);
            })
          )
          .catch(function () {});
      } catch (e) {
        retry(0); // no fetch, or a broken one: try again later
      }
    }

    // The deepest point of this page, once per page (and again only if it got deeper).
    function scrolled() {
      measure();
      if (depth > sentDepth) add("scroll", { depth: (sentDepth = depth) });
    }

    // The page is going away, or into the background: what is waiting leaves by beacon.
    function hide() {
      clearTimeout(timer);
      timer = 0;
      var rest = queue;
      if (batch && !busy) {
        rest = batch.events.concat(rest);
        batch = null;
      }
      queue = [];
      while (rest.length) {
        var part = rest.splice(0, BATCH), ok = false;
        try {
          ok = nav.sendBeacon(url, body(part)); // text/plain: no preflight, even cross-origin
        } catch (e) {
          /* no beacon: fetch below */
        }
        if (!ok) {
          queue = part.concat(rest);
          return flush();
        }
      }
    }

    function measure() {
      measuring = 0;
      var el = d.documentElement, height = Math.max(el.scrollHeight, d.body ? d.body.scrollHeight : 0, 1);
      depth = Math.max(depth, Math.min(100, Math.round(((w.scrollY + w.innerHeight) / height) * 100)));
    }

    w.addEventListener(
      "scroll",
      safe(function () {
        if (!measuring) measuring = setTimeout(safe(measure), 250);
      }),
      { passive: true }
    );
    d.addEventListener(
      "click",
      safe(function (e) {
        var data = { el: path(e.target) };
        if (e.detail) {
          data.x = round((e.clientX / w.innerWidth) * 100);
          data.y = round((e.clientY / w.innerHeight) * 100);
          data.w = w.innerWidth;
          data.h = w.innerHeight;
        }
        add("click", data);
      }),
      true
    );
    d.addEventListener(
      "visibilitychange",
      safe(function () {
        var hidden = d.visibilityState === "hidden";
        if (hidden) scrolled();
        add("visibility", { state: d.visibilityState });
        if (hidden) hide();
      })
    );
    w.addEventListener(
      "pagehide",
      safe(function () {
        scrolled();
        hide();
      })
    );

    w.tracker = {
      track: safe(function (name, data) {
        var copy;
        try {
          copy = data === undefined ? null : JSON.parse(json(data)); // a snapshot
        } catch (e) {
          copy = null; // not JSON (a cycle, a BigInt): the event goes without its data
        }
        add(name, copy, "custom");
      }),
      flush: safe(flush),
      session: sid,
    };
    add("page_view", { title: d.title.slice(0, 200), referrer: d.referrer.split("?")[0], w: w.innerWidth, h: w.innerHeight });
    for (var i = 0; pending && i < pending.length; i++) w.tracker.track.apply(null, pending[i]);
  })();
})(window, document, navigator);
