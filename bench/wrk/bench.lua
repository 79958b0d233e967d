-- One wrk script for every run of bench/run.sh, configured by environment variables:
--   BENCH_METHOD, BENCH_PATH            the request ("{}" in the path takes the next id)
--   BENCH_HEADER, BENCH_HEADER_PREFIX   e.g. "Authorization" and "Bearer "
--   BENCH_TOKENS                        file of credentials for that header, one per line
--   BENCH_ONCE=1                        never use a credential twice (cold path); stop when out
--   BENCH_IDS                           file of ids for "{}" in the path, used once each
--   BENCH_BODY                          fixed request body; BENCH_BODY_TOKENS=1: {"token": <next>}
--   BENCH_CONTENT_TYPE                  defaults to application/json when there is a body
--   BENCH_CAPTURE, BENCH_CAPTURE_FILE   a top-level JSON field of 2xx responses to save
--   BENCH_RESULT                        where done() writes the JSON summary
local env = os.getenv
local method = env("BENCH_METHOD") or "GET"
local path = env("BENCH_PATH") or "/"
local header = env("BENCH_HEADER")
local prefix = env("BENCH_HEADER_PREFIX") or ""
local once = env("BENCH_ONCE") == "1"
local body = env("BENCH_BODY")
local body_tokens = env("BENCH_BODY_TOKENS") == "1"
local capture = env("BENCH_CAPTURE")

local threads = {}
local counter = 1

function setup(thread)
  thread:set("id", counter)
  thread:set("count", 0)
  table.insert(threads, thread)
  counter = counter + 1
end

local function load(file, id, n)
  local items = {}
  if not file then return items end
  local i = 0
  for line in io.lines(file) do
    if i % n == id - 1 and #line > 0 then table.insert(items, line) end
    i = i + 1
  end
  return items
end

local creds, ids, cursor, id_cursor, out
exhausted = 0 -- global: done() reads it from every thread

function init(args)
  local n = tonumber(env("BENCH_THREADS") or "1")
  creds = load(env("BENCH_TOKENS"), id, n)
  ids = load(env("BENCH_IDS"), id, n)
  cursor, id_cursor, exhausted = 0, 0, 0
  if capture then out = io.open(env("BENCH_CAPTURE_FILE") .. "." .. id, "w") end
end

local function next_of(list, pos)
  if #list == 0 then return nil, pos end
  pos = pos + 1
  if pos > #list then
    if once then exhausted = exhausted + 1 end
    pos = 1
  end
  return list[pos], pos
end

function request()
  local headers = {}
  local p = path
  local b = body
  local cred
  if #creds > 0 then cred, cursor = next_of(creds, cursor) end
  if header and cred and not body_tokens then headers[header] = prefix .. cred end
  if body_tokens and cred then b = '{"token":"' .. cred .. '"}' end
  if string.find(p, "{}", 1, true) then
    local v
    v, id_cursor = next_of(ids, id_cursor)
    p = string.gsub(p, "{}", v or "0")
  end
  if b then headers["Content-Type"] = env("BENCH_CONTENT_TYPE") or "application/json" end
  if env("BENCH_FIXED_HEADER") then
    local k, v = string.match(env("BENCH_FIXED_HEADER"), "^([^:]+):%s*(.*)$")
    headers[k] = v
  end
  return wrk.format(method, p, headers, b)
end

function response(status, headers, resp)
  if capture and status >= 200 and status < 300 then
    local v = string.match(resp, '"' .. capture .. '"%s*:%s*"?([^",}]+)')
    if v then out:write(v, "\n") end
  end
end

function done(summary, latency, requests)
  local reused = 0
  for _, t in ipairs(threads) do reused = reused + (t:get("exhausted") or 0) end
  local secs = summary.duration / 1e6
  local e = summary.errors
  local result = string.format(
    '{"requests": %d, "seconds": %.3f, "rps": %.1f, "p50_ms": %.3f, "p90_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f, ' ..
    '"non_2xx": %d, "socket_errors": %d, "credentials_reused": %d}',
    summary.requests, secs, summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    e.status, e.connect + e.read + e.write + e.timeout, reused)
  local f = io.open(env("BENCH_RESULT"), "w")
  f:write(result, "\n")
  f:close()
  io.write(result, "\n")
end
