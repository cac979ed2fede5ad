#!lua name=mxprobe_1
-- mxprobe's Redis functions (Redis 7 FUNCTION LOAD): the politeness that must hold across every
-- node of a cluster, decided inside Redis so that one call is atomic and the time is Redis' own
-- (TIME), never a node's clock; and the steps of the node registry and the chunk queue that
-- must happen together (a heartbeat that refuses a taken name, a chunk acked and its results
-- published at once). Embedded in the engine at build time (engine/cluster/
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

-- Takes up to `want` tokens from a GCRA bucket (see rate_lease) at `now`; a rate of 0 is no
-- limit (the key is not touched). Returns granted, wait_us.
local function gcra(key, want, rate, burst, now)
  if rate <= 0 then return want, 0 end
  want = math.floor(want)
  burst = math.floor(burst)
  local interval = 1000000 / rate
  -- In offsets from now, never absolute times: now is about 1.7e15 us, where a double's step is
  -- 0.25 us, so (now + x) - now is not x and a full bucket could look one token short (granting
  -- nothing and saying to wait 0). Both stored TAT and now are whole microseconds: exact. The
  -- stored TAT is rounded to a microsecond, so a token is counted as there 1 us early at most.
  local ahead = (tonumber(redis.call('GET', key)) or now) - now
  if ahead < 0 then ahead = 0 end
  local fits = math.floor((burst * interval - ahead + 1) / interval)
  local n = math.max(0, math.min(want, fits))
  if n > 0 then
    ahead = ahead + n * interval
    redis.call('SET', key, us(now + ahead), 'PX', math.ceil(ahead / 1000) + 1)
  end
  local wait = math.ceil(ahead + interval - burst * interval)
  -- Short of what was asked: the next token is never "now" (a caller would ask again at once).
  if n < want and wait < 1 then wait = 1 end
  if wait < 0 then wait = 0 end
  return n, wait
end

-- A group's shared back-off factor at `now` (1 when the hash is missing: no back-off).
local function factor_at(key, now)
  local v = redis.call('HMGET', key, 'f', 'at', 'rec')
  local f = tonumber(v[1])
  if not f then return 1 end
  f = f + (tonumber(v[3]) or 0) * (now - (tonumber(v[2]) or now)) / 1000000
  if f > 1 then f = 1 end
  return f
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
  local n, wait = gcra(keys[1], want, rate, burst, now_us())
  return {n, wait}
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

-- A node's politeness lease for one key of its limiter (an MX group or a recipient domain) in
-- one call, so that a refill costs one command whatever it holds: the key's connection and RCPT
-- buckets (GCRA, as rate_lease), its concurrency slots (as slot_acquire, several holders at
-- once), both scaled by the group's shared back-off factor (mxp1_backoff).
-- KEYS: [1] connection bucket, [2] RCPT bucket, [3] back-off hash (a key nobody writes: factor
-- 1), [4] slot set.
-- ARGV: [1] want_c [2] rate_c [3] burst_c [4] want_r [5] rate_r [6] burst_r (a rate of 0:
-- unlimited, nothing is taken), [7] the node's own AIMD rate factor (0-1), [8] capacity (the
-- policy's sessions), [9] window (the node's AIMD window, >= 1), [10] ttl_ms, [11...] holders.
-- Rates are multiplied by min(own factor, shared factor); the slot capacity is
-- max(1, min(window, floor(capacity x shared factor))).
-- Returns {granted_c, wait_c_us, granted_r, wait_r_us, shared factor in millionths,
-- slots granted (the first n holders), slot wait_ms (refused: until the earliest hold expires)}.
local function lease(keys, args)
  local n = {}
  for i = 1, 10 do n[i] = tonumber(args[i]) or -1 end
  if #keys ~= 4 or n[10] <= 0 or n[1] < 0 or n[4] < 0 or n[2] < 0 or n[5] < 0
      or n[3] < 1 or n[6] < 1 or n[7] <= 0 or n[8] < 1 or n[9] < 1 then
    return redis.error_reply('ERR mxp1_lease: 4 keys; want, rate, burst (x2), factor, '
        .. 'capacity, window, ttl_ms, holder...')
  end
  local now = now_us()
  local shared = factor_at(keys[3], now)
  local f = math.min(n[7], shared)
  local gc, wc = gcra(keys[1], n[1], n[2] * f, n[3], now)
  local gr, wr = gcra(keys[2], n[4], n[5] * f, n[6], now)
  local slots, swait = 0, 0
  if #args > 10 then
    local capacity = math.max(1, math.min(n[9], math.floor(n[8] * shared + 1e-9)))
    local key = keys[4]
    sweep(key, now)
    local expiry = us(now + n[10] * 1000)
    for i = 11, #args do
      if redis.call('ZCARD', key) >= capacity then break end
      redis.call('ZADD', key, expiry, args[i])
      slots = slots + 1
    end
    if slots < #args - 10 then
      local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
      if first[2] then swait = math.max(1, math.ceil((tonumber(first[2]) - now) / 1000)) end
    end
    keep_until_last(key, now)
  end
  return {gc, wc, gr, wr, math.floor(shared * 1000000), slots, swait}
end

-- Shared back-off. KEYS[1]: a group's back-off hash: its factor f at time at, recovering
-- linearly by rec per second back to 1, and the last decrease. ARGV: decrease (0-1),
-- min_factor (0-1), rec (> 0, per second), holdoff_ms. A decrease within holdoff of the last one
-- (another node seeing the same storm) does not count again. The hash expires once recovered.
-- Returns {counted 1/0, factor in millionths after the call}.
local function backoff(keys, args)
  local dec, minf, rec, hold = tonumber(args[1]), tonumber(args[2]), tonumber(args[3]),
      tonumber(args[4])
  if #keys ~= 1 or not dec or dec <= 0 or dec > 1 or not minf or minf <= 0 or minf > 1
      or not rec or rec <= 0 or not hold or hold < 0 then
    return redis.error_reply('ERR mxp1_backoff: 1 key; decrease, min_factor, rec > 0, holdoff_ms')
  end
  local now = now_us()
  local f = factor_at(keys[1], now)
  local last = tonumber(redis.call('HGET', keys[1], 'last'))
  if last and now - last < hold * 1000 then return {0, math.floor(f * 1000000)} end
  f = math.max(minf, f * dec)
  redis.call('HSET', keys[1], 'f', string.format('%.6f', f), 'at', us(now), 'rec',
      string.format('%.6f', rec), 'last', us(now))
  redis.call('PEXPIRE', keys[1], math.ceil(math.max((1 - f) / rec * 1000, hold)) + 1000)
  return {1, math.floor(f * 1000000)}
end

-- Node registry. A node's record is a hash (KEYS[1], e.g. mxp:node:<name>) that expires unless
-- its heartbeat renews it; KEYS[2] is the set of names, swept by node_list. The field 'instance'
-- is random per process start: a name held by another live instance is refused, so two nodes
-- never share a name, while a node restarted after its record expired takes it back.

-- ARGV: name, instance, ttl_ms, field, value, ... Creates the record or renews our own (its
-- fields replaced by these). Returns 0 when created (joined), 1 when renewed.
local function node_beat(keys, args)
  local name, instance, ttl = args[1], args[2], tonumber(args[3])
  if #keys ~= 2 or not name or name == '' or not instance or instance == '' or not ttl
      or ttl <= 0 or (#args - 3) % 2 ~= 0 then
    return redis.error_reply('ERR mxp1_node_beat: 2 keys; name, instance, ttl_ms > 0, pairs')
  end
  local held = redis.call('HGET', keys[1], 'instance')
  if held and held ~= instance then
    return redis.error_reply('TAKEN node name ' .. name .. ' is held by a live node (instance '
        .. held .. ')')
  end
  redis.call('DEL', keys[1])
  redis.call('HSET', keys[1], 'name', name, 'instance', instance, unpack(args, 4))
  redis.call('PEXPIRE', keys[1], ttl)
  redis.call('SADD', keys[2], name)
  if held then return 1 end
  return 0
end

-- ARGV: name, instance. Deletes the record if it is ours. Returns 1 if it was.
local function node_leave(keys, args)
  if #keys ~= 2 or not args[1] or not args[2] then
    return redis.error_reply('ERR mxp1_node_leave: 2 keys; name, instance')
  end
  if redis.call('HGET', keys[1], 'instance') ~= args[2] then return 0 end
  redis.call('DEL', keys[1])
  redis.call('SREM', keys[2], args[1])
  return 1
end

-- KEYS[1]: the set of names; ARGV[1]: the records' key prefix (mxp:node:). Returns each live
-- record as a flat field/value array, and forgets the names whose record expired.
local function node_list(keys, args)
  if #keys ~= 1 or not args[1] then
    return redis.error_reply('ERR mxp1_node_list: 1 key; record prefix')
  end
  local out = {}
  for _, name in ipairs(redis.call('SMEMBERS', keys[1])) do
    local rec = redis.call('HGETALL', args[1] .. name)
    if #rec == 0 then
      redis.call('SREM', keys[1], name)
    else
      out[#out + 1] = rec
    end
  end
  return out
end

-- Chunk queue. KEYS[1]: the chunk stream (one for all jobs, consumer group ARGV[1]).

-- KEYS[2]: the job's results stream, KEYS[3]: the job's key (missing once the job is dropped).
-- ARGV: group, entry id, field, value, ... (the result entry). Acknowledges the chunk and
-- publishes its results in one step: XACK answers 1 only for the first completion of an entry
-- (whoever holds it), so a chunk's results are published once however many nodes finish it.
-- Returns 1 published, 0 already completed (nothing published), 2 the job is gone (acked and
-- deleted, results dropped).
local function chunk_complete(keys, args)
  if #keys ~= 3 or #args < 4 or #args % 2 ~= 0 then
    return redis.error_reply('ERR mxp1_chunk_complete: 3 keys; group, id, pairs')
  end
  if redis.call('XACK', keys[1], args[1], args[2]) == 0 then return 0 end
  redis.call('XDEL', keys[1], args[2])
  if redis.call('EXISTS', keys[3]) == 0 then return 2 end
  redis.call('XADD', keys[2], '*', unpack(args, 3))
  return 1
end

-- ARGV: group, consumer, id... Resets the idle time of each entry the consumer still holds
-- (XCLAIM JUSTID to itself), so XAUTOCLAIM leaves it alone; an entry completed or reclaimed by
-- another consumer meanwhile is not taken back. Returns one 1/0 per id.
local function chunk_renew(keys, args)
  if #keys ~= 1 or #args < 3 then
    return redis.error_reply('ERR mxp1_chunk_renew: 1 key; group, consumer, id...')
  end
  local out = {}
  for i = 3, #args do
    local p = redis.call('XPENDING', keys[1], args[1], args[i], args[i], 1, args[2])
    if #p == 1 then
      redis.call('XCLAIM', keys[1], args[1], args[2], 0, args[i], 'JUSTID')
      out[#out + 1] = 1
    else
      out[#out + 1] = 0
    end
  end
  return out
end

-- KEYS[2]: the job's results stream, KEYS[3]: the job's key. ARGV: seq, entry id, seq, entry id,
-- ... (the owner's outstanding chunks). Returns the seqs of the chunks that are neither on the
-- chunk stream nor answered on the results stream: lost with Redis' data (a restart without
-- persistence, or the last second before a crash with appendfsync everysec), for the owner to
-- push again. Sets the job's key again, which such a loss takes too.
local function chunk_missing(keys, args)
  if #keys ~= 3 or #args % 2 ~= 0 then
    return redis.error_reply('ERR mxp1_chunk_missing: 3 keys; seq, id pairs')
  end
  redis.call('SET', keys[3], '1')
  local answered = {}
  for _, e in ipairs(redis.call('XRANGE', keys[2], '-', '+')) do
    local f = e[2]
    for i = 1, #f - 1, 2 do
      if f[i] == 'seq' then answered[f[i + 1]] = true end
    end
  end
  local out = {}
  for i = 1, #args, 2 do
    if not answered[args[i]] and #redis.call('XRANGE', keys[1], args[i + 1], args[i + 1]) == 0 then
      out[#out + 1] = args[i]
    end
  end
  return out
end

-- Operations: what the cluster uses now, read without writing anything (flag no-writes, so
-- FCALL_RO and replicas may run them too).

-- ARGV: [1] the limiter's key prefix (mxp:), [2...] MX group keys (as in <prefix>rl:s:g:<key>).
-- Per group, in the order asked: {slots held now (holds not yet expired, across every node),
-- connection bucket ahead_us, RCPT bucket ahead_us, shared back-off factor in millionths}.
-- A bucket's ahead_us is how far its TAT runs ahead of now: tokens taken beyond what the rate
-- has refilled, in time (ahead_us x rate / 1e6 tokens; the bucket is empty at burst x
-- interval). GCRA keeps no count of what was taken over a window, so this is the measure of
-- use it has: 0 for an idle group, the burst's worth when the cluster takes the whole rate. A
-- missing key is an idle one: 0 (no back-off: 1000000).
local function group_use(keys, args)
  if #keys ~= 0 or not args[1] then
    return redis.error_reply('ERR mxp1_group_use: 0 keys; prefix, group...')
  end
  local now = now_us()
  local p = args[1] .. 'rl:'
  local out = {}
  for i = 2, #args do
    local g = ':g:' .. args[i]
    local held = redis.call('ZCOUNT', p .. 's' .. g, '(' .. us(now), '+inf')
    local function ahead(key)
      local tat = tonumber(redis.call('GET', key))
      if not tat or tat <= now then return 0 end
      return tat - now
    end
    out[#out + 1] = {held, ahead(p .. 'c' .. g), ahead(p .. 'r' .. g),
      math.floor(factor_at(p .. 'bo' .. g, now) * 1000000)}
  end
  return out
end

-- KEYS[1]: the chunk stream; ARGV[1]: its consumer group. Returns {entries on the stream,
-- entries claimed (the group's pending: delivered to a worker, not yet completed), consumers}.
-- A completed chunk is deleted from the stream (chunk_complete), so entries minus claimed is
-- what waits for a worker. A missing stream or group is {0, 0, 0}.
local function chunk_counts(keys, args)
  if #keys ~= 1 or not args[1] then
    return redis.error_reply('ERR mxp1_chunk_counts: 1 key; group')
  end
  if redis.call('TYPE', keys[1])['ok'] ~= 'stream' then return {0, 0, 0} end
  local len = redis.call('XLEN', keys[1])
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', keys[1])) do
    local f = {}
    for i = 1, #g - 1, 2 do f[g[i]] = g[i + 1] end
    if f['name'] == args[1] then return {len, f['pending'] or 0, f['consumers'] or 0} end
  end
  return {len, 0, 0}
end

-- Shared catch-all facts: the cluster probes a domain once, not once per node. KEYS: one key per
-- domain (e.g. mxp:ca:<domain>), holding '1' (catch-all) or '0' (not) for catch_all_ttl once a
-- probe told, or 'p:<holder>' while a node probes it (a short claim, renewed by calling again).

-- ARGV: holder, claim_ttl_ms. For each key: 1 or 0 (the fact), 2 (probe it: the caller holds
-- the claim now, made or renewed), 3 (another holder probes it). A claim that expired is gone
-- (its key with it), so the next caller takes it.
local function catch_all(keys, args)
  local holder, ttl = args[1], tonumber(args[2])
  if #keys < 1 or not holder or holder == '' or not ttl or ttl <= 0 then
    return redis.error_reply('ERR mxp1_catch_all: keys; holder, claim_ttl_ms > 0')
  end
  local mine = 'p:' .. holder
  local out = {}
  for i, key in ipairs(keys) do
    local v = redis.call('GET', key)
    if v == '1' then
      out[i] = 1
    elseif v == '0' then
      out[i] = 0
    elseif not v or v == mine then
      redis.call('SET', key, mine, 'PX', ttl)
      out[i] = 2
    else
      out[i] = 3
    end
  end
  return out
end

-- KEYS: domain keys. ARGV: holder, ttl_ms, then one value per key: '1' or '0' (learned: stored
-- for ttl_ms whoever holds the claim), or '' (the probe could not tell: the caller's claim is
-- released, another node may try). Returns how many keys were written or released.
local function catch_all_learned(keys, args)
  local holder, ttl = args[1], tonumber(args[2])
  if #keys < 1 or not holder or not ttl or ttl <= 0 or #args ~= #keys + 2 then
    return redis.error_reply('ERR mxp1_catch_all_learned: keys; holder, ttl_ms > 0, value per key')
  end
  local n = 0
  for i, key in ipairs(keys) do
    local v = args[i + 2]
    if v == '1' or v == '0' then
      redis.call('SET', key, v, 'PX', ttl)
      n = n + 1
    elseif redis.call('GET', key) == 'p:' .. holder then
      redis.call('DEL', key)
      n = n + 1
    end
  end
  return n
end

-- Shared results cache. KEYS: one key per address (e.g. mxp:rc:<normalized>); ARGV: ttl_ms,
-- then one record per key. Sets each with the TTL in one call (MSET has no TTL). Returns the
-- number of keys set.
local function results_put(keys, args)
  local ttl = tonumber(args[1])
  if not ttl or ttl <= 0 or #args ~= #keys + 1 then
    return redis.error_reply('ERR mxp1_results_put: keys; ttl_ms > 0, value per key')
  end
  for i, key in ipairs(keys) do
    redis.call('SET', key, args[i + 1], 'PX', ttl)
  end
  return #keys
end

redis.register_function('mxp1_rate_lease', rate_lease)
redis.register_function('mxp1_slot_acquire', slot_acquire)
redis.register_function('mxp1_slot_renew', slot_renew)
redis.register_function('mxp1_slot_release', slot_release)
redis.register_function('mxp1_lease', lease)
redis.register_function('mxp1_backoff', backoff)
redis.register_function('mxp1_node_beat', node_beat)
redis.register_function('mxp1_node_leave', node_leave)
redis.register_function('mxp1_node_list', node_list)
redis.register_function('mxp1_chunk_complete', chunk_complete)
redis.register_function('mxp1_chunk_renew', chunk_renew)
redis.register_function('mxp1_chunk_missing', chunk_missing)
redis.register_function{function_name = 'mxp1_group_use', callback = group_use,
  flags = {'no-writes'}}
redis.register_function{function_name = 'mxp1_chunk_counts', callback = chunk_counts,
  flags = {'no-writes'}}
redis.register_function('mxp1_catch_all', catch_all)
redis.register_function('mxp1_catch_all_learned', catch_all_learned)
redis.register_function('mxp1_results_put', results_put)
