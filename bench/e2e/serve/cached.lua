-- wrk script of bench_serve.sh, part 3: GET /v1/verify for addresses the results cache already
-- holds (userM@dN.test for M <= MAILBOXES), paced to a fixed rate like verify.lua, round-robin
-- over the domains. Every answer must be a cached record carrying the derived fields (score,
-- score_factors, provider, base); the latency is request() to response() per request.
--
--   wrk -t 1 -c C -d D -s cached.lua URL -- DOMAINS MAILBOXES RATE
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } mxp_bench_timespec;
int clock_gettime(int clk, mxp_bench_timespec *tp);
]]
local ts = ffi.new("mxp_bench_timespec")
local function now_us()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1e6 + tonumber(ts.tv_nsec) / 1e3
end

local domains, mailboxes, interval_us
local k = 0
local next_slot = nil
local started = {} -- address -> request time (us); an address is in flight once at a time
latency = {}
responses, non200, not_cached, no_fields, unmatched = 0, 0, 0, 0, 0

function init(args)
  domains = tonumber(args[1])
  mailboxes = tonumber(args[2])
  interval_us = 1e6 / tonumber(args[3])
end

function delay()
  local now = now_us()
  if next_slot == nil or next_slot < now then next_slot = now end
  local d = next_slot - now
  next_slot = next_slot + interval_us
  return math.floor(d / 1000)
end

function request()
  local i = k % (domains * mailboxes)
  k = k + 1
  local email = "user" .. (math.floor(i / domains) + 1) .. "@d" .. (i % domains + 1) .. ".test"
  started[email] = now_us()
  return wrk.format("GET", "/v1/verify?email=" .. email)
end

function response(status, headers, body)
  local t = now_us()
  responses = responses + 1
  if status ~= 200 then
    non200 = non200 + 1
    return
  end
  if not body:find('"cached":true', 1, true) then not_cached = not_cached + 1 end
  if not (body:find('"score":%d') and body:find('"score_factors":%[') and
          body:find('"provider":', 1, true) and body:find('"base":"', 1, true)) then
    no_fields = no_fields + 1
  end
  local email = body:match('"email":"([^"]*)"')
  local t0 = email and started[email]
  if not t0 then
    unmatched = unmatched + 1
    return
  end
  started[email] = nil
  latency[#latency + 1] = (t - t0) / 1000
end

local function pct(sorted, p)
  if #sorted == 0 then return 0 / 0 end
  local i = math.ceil(p / 100 * #sorted)
  if i < 1 then i = 1 end
  return sorted[i]
end

function done(summary, lat, requests)
  -- One thread: its globals are read through the thread object like verify.lua's.
  local t = nil
  for _, th in ipairs(threads or {}) do t = th end
  local la = t and t:get("latency") or latency
  table.sort(la)
  local secs = summary.duration / 1e6
  local e = summary.errors
  local g = function(name) return t and t:get(name) or _G[name] end
  io.write(string.format(
    "RESULT requests=%d secs=%.2f rate=%.1f p50=%.3f p90=%.3f p99=%.3f p999=%.3f max=%.3f " ..
    "samples=%d responses=%d non200=%d not_cached=%d no_fields=%d unmatched=%d sock_errors=%d\n",
    summary.requests, secs, summary.requests / secs, pct(la, 50), pct(la, 90), pct(la, 99),
    pct(la, 99.9), la[#la] or 0, #la, g("responses"), g("non200"), g("not_cached"),
    g("no_fields"), g("unmatched"), e.connect + e.read + e.write + e.timeout))
end

threads = {}
function setup(thread)
  table.insert(threads, thread)
end
