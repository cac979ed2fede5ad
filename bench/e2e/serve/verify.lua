-- wrk script of bench_serve.sh: GET /v1/verify with a new existing address per request, paced to
-- a fixed rate, and the farm's own reply time (the record's "elapsed_ms") next to wrk's latency.
--
--   wrk -t T -c C -d D -s verify.lua URL -- DOMAINS MAILBOXES RATE T
--
-- Addresses: userM@dN.test, taken round-robin over the DOMAINS domains (so no domain gets a burst)
-- and never twice in a run (the server answers a repeated address from memory): thread t of T
-- takes indexes t, t+T, t+2T, ... (index i is user(i // DOMAINS + 1)@d(i % DOMAINS + 1).test).
-- Pacing: wrk 4 has no fixed-rate option, but it asks delay() (milliseconds) before each request;
-- each thread hands out send slots RATE/T per second apart (no catch-up burst after a stall).
-- LuaJIT's FFI gives a monotonic clock in microseconds for the slots and for a second latency
-- measure per request (request() to response(), matched by the address the record echoes), so the
-- overhead is also known per request, not only as a difference of percentiles.
-- done() prints one "RESULT key=value ..." line for the shell script, and a readable summary.
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

-- Main state: the threads, numbered as they are set up.
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

-- Thread state.
local domains, mailboxes, interval_us, nthreads
local k = 0 -- requests made by this thread
local next_slot = nil
local started = {} -- address -> request time (us)
elapsed = {} -- "elapsed_ms" of every 200 answer with one (read by done())
latency = {} -- request() to response(), ms
overhead = {} -- latency - elapsed_ms, ms
responses, non200, cached, pending, no_elapsed, unmatched, exhausted = 0, 0, 0, 0, 0, 0, 0
verdicts = {}

function init(args)
  domains = tonumber(args[1])
  mailboxes = tonumber(args[2])
  nthreads = tonumber(args[4])
  interval_us = 1e6 * nthreads / tonumber(args[3])
end

function delay()
  local now = now_us()
  if next_slot == nil or next_slot < now then next_slot = now end
  local d = next_slot - now
  next_slot = next_slot + interval_us
  return math.floor(d / 1000)
end

function request()
  local i = tid + k * nthreads
  k = k + 1
  local m = math.floor(i / domains) + 1
  if m > mailboxes then -- out of fresh addresses: counted, and the run is void
    exhausted = exhausted + 1
    m = (m - 1) % mailboxes + 1
  end
  local email = "user" .. m .. "@d" .. (i % domains + 1) .. ".test"
  started[email] = now_us()
  return wrk.format("GET", "/v1/verify?email=" .. email .. "&timeout=10")
end

function response(status, headers, body)
  local t = now_us()
  responses = responses + 1
  if status ~= 200 then
    non200 = non200 + 1
    return
  end
  if body:find('"cached":true', 1, true) then cached = cached + 1 end
  if body:find('"pending":true', 1, true) then pending = pending + 1 end
  local v = body:match('"verdict":"([%a_]+)"') or "?"
  local r = body:match('"reason":"([%a_]+)"') or "?"
  verdicts[v .. "/" .. r] = (verdicts[v .. "/" .. r] or 0) + 1
  local e = tonumber(body:match('"elapsed_ms":([%d%.]+)'))
  if not e then
    no_elapsed = no_elapsed + 1
    return
  end
  elapsed[#elapsed + 1] = e
  local email = body:match('"email":"([^"]*)"')
  local t0 = email and started[email]
  if not t0 then
    unmatched = unmatched + 1
    return
  end
  started[email] = nil
  latency[#latency + 1] = (t - t0) / 1000
  overhead[#overhead + 1] = (t - t0) / 1000 - e
end

-- Nearest-rank percentile of a sorted list.
local function pct(sorted, p)
  if #sorted == 0 then return 0 / 0 end
  local i = math.ceil(p / 100 * #sorted)
  if i < 1 then i = 1 end
  return sorted[i]
end

local function gather(name)
  local all = {}
  for _, t in ipairs(threads) do
    for _, x in ipairs(t:get(name)) do all[#all + 1] = x end
  end
  table.sort(all)
  return all
end

function done(summary, lat, requests)
  local sums = { responses = 0, non200 = 0, cached = 0, pending = 0, no_elapsed = 0,
                 unmatched = 0, exhausted = 0 }
  local verdict_list = {}
  for _, t in ipairs(threads) do
    for key in pairs(sums) do sums[key] = sums[key] + t:get(key) end
    for vr, n in pairs(t:get("verdicts")) do verdict_list[vr] = (verdict_list[vr] or 0) + n end
  end
  local el, la, ov = gather("elapsed"), gather("latency"), gather("overhead")
  local secs = summary.duration / 1e6
  local e = summary.errors
  local w50, w99 = lat:percentile(50) / 1000, lat:percentile(99) / 1000
  local e50, e99 = pct(el, 50), pct(el, 99)
  local vs = {}
  for vr, n in pairs(verdict_list) do vs[#vs + 1] = vr .. ":" .. n end
  table.sort(vs)
  io.write(string.format(
    "RESULT requests=%d secs=%.2f rate=%.1f wrk_p50=%.3f wrk_p99=%.3f wrk_max=%.3f " ..
    "el_p50=%.3f el_p99=%.3f el_max=%.3f ov_p50=%.3f ov_p99=%.3f " ..
    "req_p50=%.3f req_p99=%.3f req_ov_p50=%.3f req_ov_p99=%.3f req_ov_max=%.3f samples=%d " ..
    "responses=%d non200=%d cached=%d pending=%d no_elapsed=%d unmatched=%d exhausted=%d " ..
    "sock_errors=%d verdicts=%s\n",
    summary.requests, secs, summary.requests / secs, w50, w99, lat.max / 1000, e50, e99,
    el[#el] or 0, w50 - e50, w99 - e99, pct(la, 50), pct(la, 99), pct(ov, 50), pct(ov, 99),
    ov[#ov] or 0, #ov, sums.responses, sums.non200, sums.cached, sums.pending, sums.no_elapsed,
    sums.unmatched, sums.exhausted, e.connect + e.read + e.write + e.timeout,
    table.concat(vs, ",")))
end
