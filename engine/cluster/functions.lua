#!lua name=mxprobe_1
-- mxprobe's Redis functions (Redis 7 FUNCTION LOAD): the politeness that must hold across every
-- node of a cluster, decided inside Redis so that one call is atomic and the time is Redis' own
-- (TIME), never a node's clock. Embedded in the engine at build time (engine/cluster/
-- CMakeLists.txt) and loaded with FUNCTION LOAD REPLACE on every connection, so a Redis
-- restarted without persistence has them again before the first FCALL.
--
-- The library and function names carry a version (mxprobe_1, mxp1_*): a change of semantics
-- gets new names, so nodes of two versions running side by side never replace each other's.
--
-- Times are microseconds on Redis' clock. Lua numbers are doubles: 1.7e15 us is exact (< 2^53),
-- but Redis turns a Lua number into a string with "%.14g", so every time handed back to
-- redis.call is formatted with string.format('%.0f') first.

local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local function us(x)
  return string.format('%.0f', x)
end

-- Rate lease, GCRA (the generic cell rate algorithm, a token bucket kept as one number: the
-- theoretical arrival time TAT of the next token). KEYS[1]: the bucket.
-- ARGV: want (tokens, >= 0), rate (tokens per second, > 0, may be fractional: 0.2 = one per 5 s),
-- burst (tokens an idle bucket grants at once, >= 1).
-- Grants n = min(want, what fits) where n fits when TAT + n * interval <= now + burst * interval.
-- Returns {granted, wait_us}: wait_us is how long until one more token fits (0: now).
-- want = 0 only asks when the next token comes. The key expires when its TAT passes: an idle
-- bucket is a missing key (full burst), so idle keys cost Redis no memory.
local function rate_lease(keys, args)
  local want = tonumber(args[1])
  local rate = tonumber(args[2])
  local burst = tonumber(args[3])
  if #keys ~= 1 or not want or want < 0 or not rate or rate <= 0 or not burst or burst < 1 then
    return redis.error_reply('ERR mxp1_rate_lease: 1 key; want >= 0, rate > 0, burst >= 1')
  end
  want = math.floor(want)
  burst = math.floor(burst)
  local now = now_us()
  local interval = 1000000 / rate
  local tat = tonumber(redis.call('GET', keys[1])) or now
  if tat < now then tat = now end
  local limit = now + burst * interval
  local fits = math.floor((limit - tat) / interval + 1e-9)
  local n = math.max(0, math.min(want, fits))
  if n > 0 then
    tat = tat + n * interval
    redis.call('SET', keys[1], us(tat), 'PX', math.ceil((tat - now) / 1000) + 1)
  end
  local wait = tat + interval - limit
  if wait < 0 then wait = 0 end
  return {n, math.ceil(wait)}
end

-- Concurrency slots. KEYS[1]: a sorted set of holders scored by when their hold expires. A
-- holder is the caller's name for one slot (e.g. "node-a:17"); a live node renews its holders
-- before they expire, a dead node's expire by themselves and the next caller sweeps them.

local function sweep(key, now)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', us(now))
end

-- The set lives as long as its longest hold.
local function keep_until_last(key, now)
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if last[2] then
    redis.call('PEXPIRE', key, math.ceil((tonumber(last[2]) - now) / 1000) + 1)
  end
end

-- ARGV: holder, capacity (>= 1), ttl_ms (> 0). A holder that already holds is renewed.
-- Returns {granted (1/0), held (slots held now), wait_ms (refused: until the earliest hold
-- expires unless renewed; 0 when granted)}.
local function slot_acquire(keys, args)
  local holder = args[1]
  local capacity = tonumber(args[2])
  local ttl = tonumber(args[3])
  if #keys ~= 1 or not holder or holder == '' or not capacity or capacity < 1 or not ttl
      or ttl <= 0 then
    return redis.error_reply('ERR mxp1_slot_acquire: 1 key; holder, capacity >= 1, ttl_ms > 0')
  end
  local key = keys[1]
  local now = now_us()
  sweep(key, now)
  local granted = 0
  if redis.call('ZSCORE', key, holder) or redis.call('ZCARD', key) < capacity then
    redis.call('ZADD', key, us(now + ttl * 1000), holder)
    granted = 1
  end
  local wait = 0
  if granted == 0 then
    local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    wait = math.max(0, math.ceil((tonumber(first[2]) - now) / 1000))
  end
  keep_until_last(key, now)
  return {granted, redis.call('ZCARD', key), wait}
end

-- ARGV: ttl_ms, holder... Extends each holder that still holds; one that expired meanwhile is
-- not taken back (its slot may be someone else's now). Returns one 1/0 per holder.
local function slot_renew(keys, args)
  local ttl = tonumber(args[1])
  if #keys ~= 1 or not ttl or ttl <= 0 or #args < 2 then
    return redis.error_reply('ERR mxp1_slot_renew: 1 key; ttl_ms > 0, holder...')
  end
  local key = keys[1]
  local now = now_us()
  sweep(key, now)
  local expiry = us(now + ttl * 1000)
  local out = {}
  for i = 2, #args do
    out[i - 1] = redis.call('ZADD', key, 'XX', 'CH', expiry, args[i]) == 1 and 1 or 0
    if out[i - 1] == 0 and redis.call('ZSCORE', key, args[i]) then out[i - 1] = 1 end
  end
  keep_until_last(key, now)
  return out
end

-- ARGV: holder... Returns how many of them held a slot.
local function slot_release(keys, args)
  if #keys ~= 1 or #args < 1 then
    return redis.error_reply('ERR mxp1_slot_release: 1 key; holder...')
  end
  return redis.call('ZREM', keys[1], unpack(args))
end

redis.register_function('mxp1_rate_lease', rate_lease)
redis.register_function('mxp1_slot_acquire', slot_acquire)
redis.register_function('mxp1_slot_renew', slot_renew)
redis.register_function('mxp1_slot_release', slot_release)
