-- wrk load generator for single-event requests: The Eye, the tracker demo, and /send_logs at
-- batch 1 for comparison (bench/events.py drives it).
--
--   LOAD_KIND=eye   LOAD_KEY=<ingest key>             wrk ... -s bench/events.lua URL
--   LOAD_KIND=track LOAD_KEY=<ingest key>             wrk ... -s bench/events.lua URL
--   LOAD_KIND=logs  LOAD_TOKEN=<token> LOAD_USER=bench wrk ... -s bench/events.lua URL
--   LOAD_KIND=api   LOAD_KEY=<ingest key>             wrk ... -s bench/events.lua URL
--   LOAD_KIND=logs100 LOAD_TOKEN=<token> LOAD_USER=bench wrk ... -s bench/events.lua URL
--
-- eye:   POST /eye/collector with "Authorization: Token <key>", the Eye client's body; the
--        session rotates over LOAD_SESSIONS (default 100) per wrk thread, so sessions are
--        opened and then updated, as with real traffic.
-- track: POST /track?key=<key>, the tracker page's body (`_v`, meta as a JSON string), the
--        session (a UUID) rotating the same way, `order` counting up.
-- logs:  POST //send_logs with one record, exactly as the LoggerBotLogging client sends it.
-- api:   POST /api/events with "X-Ingest-Key", 100 events per request (one session per
--        request, rotating as above).
-- logs100: POST //send_logs with 100 records, as the client sends a full batch.
-- At the end: a status histogram and one machine-readable RESULT line (as bench/run.py's).

local kind = os.getenv("LOAD_KIND") or "eye"
local key = os.getenv("LOAD_KEY") or ""
local token = os.getenv("LOAD_TOKEN") or ""
local user = os.getenv("LOAD_USER") or "bench"
local sessions = tonumber(os.getenv("LOAD_SESSIONS") or "100")

local batch = 100
local is_logs = kind == "logs" or kind == "logs100"

if not is_logs and key == "" then
  io.stderr:write("events.lua: set LOAD_KEY to an ingest key\n")
  os.exit(2)
end
if is_logs and token == "" then
  io.stderr:write("events.lua: set LOAD_TOKEN to the user's token\n")
  os.exit(2)
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_id", #threads)
end

function init(args)
  statuses = {}
  counter = 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  if kind == "eye" then
    wrk.path = "/eye/collector"
    wrk.headers["Authorization"] = "Token " .. key
  elseif kind == "track" then
    wrk.path = "/track?key=" .. key
    wrk.headers["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) wrk"
  elseif kind == "api" then
    wrk.path = "/api/events"
    wrk.headers["X-Ingest-Key"] = key
  else
    local now = os.date("!%Y-%m-%dT%H:%M:%S")
    local record = string.format(
      '{"level": 40, "event_at": "%s", "msg": "bench message from wrk thread %d", '
        .. '"p_description": "bench_load"}', now, thread_id or 0)
    local records = {}
    for _ = 1, (kind == "logs100" and batch or 1) do table.insert(records, record) end
    wrk.path = "//send_logs"
    wrk.headers["X-User-Token"] = token
    wrk.body = string.format(
      '{"data": {"post_time": "%s", "pid": %d, "p_name": "wrk", "logs": [%s], "user": "%s"}}',
      now, 40000 + (thread_id or 0), table.concat(records, ", "), user)
  end
end

function request()
  if is_logs then
    return wrk.format()
  end
  counter = counter + 1
  local s = counter % sessions
  local body
  if kind == "api" then
    local now = os.date("!%Y-%m-%dT%H:%M:%S")
    local events = {}
    for i = 1, batch do
      events[i] = string.format(
        '{"name": "click", "session": "bench-%d-%d", "page": "/page/%d", "time": "%s", '
          .. '"sequence": %d, "data": {"x": %d}}',
        thread_id or 0, s, i % 7, now, i, i)
    end
    body = '{"events": [' .. table.concat(events, ", ") .. "]}"
  elseif kind == "eye" then
    body = string.format(
      '{"session_id": "bench-%d-%d", "category": "page interaction", "name": "click", '
        .. '"data": {"host": "bench.example", "path": "/page/%d", "x": %d}, '
        .. '"timestamp": "%s.%06d"}',
      thread_id or 0, s, counter % 7, counter, os.date("!%Y-%m-%d %H:%M:%S"), counter % 1000000)
  else
    body = string.format(
      '{"_v":1,"timestamp":"%s.000Z","order":%d,'
        .. '"session_id":"00000000-0000-4000-8000-%012d","page":"/page/%d","action":"click",'
        .. '"meta":"{\\"x\\":%d,\\"y\\":20}","client_context":{"referer":"https://bench.example/"},'
        .. '"server_context":{}}',
      os.date("!%Y-%m-%dT%H:%M:%S"), counter, (thread_id or 0) * 1000000 + s, counter % 7,
      counter % 1000)
  end
  return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local total, ok = {}, 0
  for _, t in ipairs(threads) do
    for code, n in pairs(t:get("statuses") or {}) do
      total[code] = (total[code] or 0) + n
    end
  end
  local codes = {}
  for code in pairs(total) do table.insert(codes, code) end
  table.sort(codes)
  local non200, parts = 0, {}
  for _, code in ipairs(codes) do
    table.insert(parts, code .. "=" .. total[code])
    if code == 200 then ok = total[code] else non200 = non200 + total[code] end
  end
  local secs = summary.duration / 1e6
  local e = summary.errors
  local sock = e.connect + e.read + e.write + e.timeout
  print(string.format("Status codes: %s", #parts > 0 and table.concat(parts, " ") or "none"))
  print(string.format(
    "RESULT kind=%s requests=%d ok200=%d non200=%d sock_err=%d req_s=%.1f p50_ms=%.2f p99_ms=%.2f",
    kind, summary.requests, ok, non200, sock, summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
