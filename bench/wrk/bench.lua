-- One wrk script for every run of bench/run.sh, configured by environment variables:
--   BENCH_METHOD                        GET unless set
--   BENCH_PATH                          the path; the URL's path when unset ("{}" takes the next id)
--   BENCH_HEADER, BENCH_HEADER_PREFIX   e.g. "Authorization" and "Bearer "
--   BENCH_TOKENS                        file of credentials for that header, one per line
--   BENCH_ONCE=1                        never use a credential or id twice (cold path); when
--                                       they run out they are reused and counted
--   BENCH_IDS                           file of ids for "{}" in the path
--   BENCH_BODY                          fixed request body; BENCH_BODY_TOKENS=1: {"token": <next>},
--                                       or with both, BENCH_BODY's "{token}" takes the next one
--   BENCH_CONTENT_TYPE                  the body's type (application/json unless set)
--   BENCH_FIXED_HEADER                  one more header, "Name: value"
--   BENCH_CAPTURE, BENCH_CAPTURE_FILE   a top-level JSON field of 2xx responses to save
--   BENCH_RESULT                        where done() writes the JSON summary
--
-- Requests are formatted in init() (all but those with ids in the path), so the load
-- generator spends its time on the wire, not in Lua: the same cost for every server measured.
local env = os.getenv
local method = env("BENCH_METHOD") or "GET"
local header = env("BENCH_HEADER")
local prefix = env("BENCH_HEADER_PREFIX") or ""
local once = env("BENCH_ONCE") == "1"
local body = env("BENCH_BODY")
local body_tokens = env("BENCH_BODY_TOKENS") == "1"
local token_body = body or '{"token":"{token}"}'
local capture = env("BENCH_CAPTURE")

local threads = {}
local counter = 1

function setup(thread)
  thread:set("id", counter)
  table.insert(threads, thread)
  counter = counter + 1
end

-- This thread's share of a file: every n-th line.
local function share(file, id, n)
  local items = {}
  if not file then return items end
  local i = 0
  for line in io.lines(file) do
    if i % n == id - 1 and #line > 0 then table.insert(items, line) end
    i = i + 1
  end
  return items
end

local creds, ids, prepared, cursor, id_cursor, out, path
exhausted = 0 -- global: done() reads it from every thread

-- The request for one credential and id. wrk.format is costly in Lua, so it runs once, with
-- placeholders, and each request is then two concatenations: the load generator can keep up
-- with every server measured, even when every request carries a new credential.
local MARK_CRED, MARK_ID = "\1CRED\1", "\2ID\2"
local template

local function format_template()
  local headers = {}
  local b = body
  if header and not body_tokens then headers[header] = prefix .. MARK_CRED end
  if body_tokens then b = string.gsub(token_body, "{token}", MARK_CRED) end
  if b then headers["Content-Type"] = env("BENCH_CONTENT_TYPE") or "application/json" end
  local fixed = env("BENCH_FIXED_HEADER")
  if fixed then
    local k, v = string.match(fixed, "^([^:]+):%s*(.*)$")
    headers[k] = v
  end
  local p = string.gsub(path, "{}", MARK_ID)
  -- Content-Length is computed for the placeholder; a body of tokens is fixed up per request.
  return wrk.format(method, p, headers, b)
end

-- Splits the template at its placeholders: a list of literal pieces and markers.
local function split(text)
  local parts = {}
  local pos = 1
  while true do
    local a, b_, which
    local ca, cb = string.find(text, MARK_CRED, pos, true)
    local ia, ib = string.find(text, MARK_ID, pos, true)
    if ca and (not ia or ca < ia) then a, b_, which = ca, cb, "cred" elseif ia then a, b_, which = ia, ib, "id" end
    if not a then break end
    table.insert(parts, string.sub(text, pos, a - 1))
    table.insert(parts, which)
    pos = b_ + 1
  end
  table.insert(parts, string.sub(text, pos))
  return parts
end

local function build(cred, id_value)
  local out_parts = {}
  for i, part in ipairs(template) do
    if i % 2 == 1 then
      out_parts[i] = part
    elseif part == "cred" then
      out_parts[i] = cred or ""
    else
      out_parts[i] = id_value or ""
    end
  end
  local req = table.concat(out_parts)
  if body_tokens and cred then
    -- The placeholder's length was counted; count the real token instead.
    local len = #(string.gsub(token_body, "{token}", function() return cred end))
    req = string.gsub(req, "Content%-Length: %d+", "Content-Length: " .. len, 1)
  end
  return req
end

function init(args)
  local n = tonumber(env("BENCH_THREADS") or "1")
  path = env("BENCH_PATH") or wrk.path
  template = split(format_template())
  creds = share(env("BENCH_TOKENS"), id, n)
  ids = share(env("BENCH_IDS"), id, n)
  cursor, id_cursor, exhausted = 0, 0, 0
  if capture then
    out = io.open(env("BENCH_CAPTURE_FILE") .. "." .. id, "w")
    out:setvbuf("line") -- wrk exits without closing the Lua states
  end
  -- Every request a credential gives is formatted here, also the once-only ones of a cold
  -- run: sending one then costs the same as sending a repeated one.
  prepared = {}
  if #ids == 0 then
    if #creds == 0 then
      prepared[1] = build(nil, nil)
    else
      for i, cred in ipairs(creds) do prepared[i] = build(cred, nil) end
    end
  end
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
  if #prepared > 0 then
    cursor = cursor + 1
    if cursor > #prepared then
      if once then exhausted = exhausted + 1 end
      cursor = 1
    end
    return prepared[cursor]
  end
  local cred, id_value
  cred, cursor = next_of(creds, cursor)
  id_value, id_cursor = next_of(ids, id_cursor)
  return build(cred, id_value)
end

-- Only defined when needed: wrk parses no response bodies for Lua otherwise.
if capture then
  function response(status, headers, resp)
    if status >= 200 and status < 300 then
      local v = string.match(resp, '"' .. capture .. '"%s*:%s*"?([^",}]+)')
      if v then out:write(v, "\n") end
    end
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
