-- observe.lua: add one tally to a subject's minute counters, hour-of-week baseline, export
-- marker and denial window, and return what the rules judge. memory.go does the same in
-- process; keep the two in step (store_test.go runs the same cases on both).
--
-- KEYS[1] the subject's hash: m (open minute), c (its records), ms (its hour-of-week slot),
--         f (first minute with records), w0..w6 (a ring of 10-second buckets, "index records",
--         for the last 60 s), r (recent request refs, newest first, one per line),
--         s<slot> = "n mean variance"
-- KEYS[2] the export marker: it exists once the subject has exported
-- KEYS[3] the denial window: field <minute> = denials in that minute
-- ARGV    1 now_ms, 2 minute, 3 slot, 4 records, 5 denials, 6 export (0|1), 7 refs,
--         8 alpha, 9 k, 10 floor, 11 min_samples, 12 deny window (minutes), 13 ttl_ms,
--         14 export_ttl_ms
--
-- Returns {minute_records, minute, last60, last60_since_ms, n, mean, variance, first_minute,
-- first_export, denials, denials_since_minute, refs}; mean and variance as "%.17g" strings
-- so that they reach Go exactly. Minutes are Unix minutes; times come from the caller (the
-- replicas' clocks), not from Redis, so the tests' fake clocks drive it.
--
-- The common case is three calls: HMGET, HSET, PEXPIRE.
local key, xkey, dkey = KEYS[1], KEYS[2], KEYS[3]
local now = tonumber(ARGV[1])
local minute = tonumber(ARGV[2])
local slot = ARGV[3]
local records = tonumber(ARGV[4])
local denials = tonumber(ARGV[5])
local export = tonumber(ARGV[6])
local refs = ARGV[7]
local alpha, k, floor, minn = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11])
local dwin, ttl, xttl = tonumber(ARGV[12]), tonumber(ARGV[13]), tonumber(ARGV[14])

local h = redis.call('HMGET', key, 'm', 'c', 'ms', 'f', 'r', 'w0', 'w1', 'w2', 'w3', 'w4', 'w5', 'w6', 's' .. slot)
local m, c, ms, f = tonumber(h[1]), tonumber(h[2]) or 0, h[3], tonumber(h[4])
local r = h[5] or ''
local ring = {}
for i = 0, 6 do
  local v = h[6 + i]
  if v then
    local bi, bn = string.match(v, '^(%-?%d+) (%d+)$')
    ring[i] = {tonumber(bi), tonumber(bn)}
  end
end

local set = {}
local function put(field, value)
  set[#set + 1] = field
  set[#set + 1] = value
end

-- stats caches the slots' baselines: {n, mean, variance}
local stats = {}
local function parse(v)
  if not v then return {0, 0, 0} end
  local n, mu, var = string.match(v, '^(%S+) (%S+) (%S+)$')
  return {tonumber(n) or 0, tonumber(mu) or 0, tonumber(var) or 0}
end
stats[slot] = parse(h[13])
local function stat(s)
  if stats[s] == nil then stats[s] = parse(redis.call('HGET', key, 's' .. s)) end
  return stats[s]
end

-- fold adds one finished minute's records x to slot s's exponentially weighted mean and
-- variance. The first minutes average plainly (alpha is at least 1/n); once the slot has
-- learned, a minute above the alert bound counts as the bound, so that a long exfiltration
-- does not teach the baseline it is normal.
local function fold(s, x)
  local st = stat(s)
  local n, mu, var = st[1], st[2], st[3]
  if n == 0 then
    mu, var = x, 0
  else
    if n >= minn then
      local bound = math.max(floor, mu + k * math.sqrt(var))
      if x > bound then x = bound end
    end
    local a = math.max(alpha, 1 / (n + 1))
    local d = x - mu
    local inc = a * d
    mu = mu + inc
    var = (1 - a) * (var + d * inc)
  end
  stats[s] = {n + 1, mu, var}
  put('s' .. s, string.format('%d %.17g %.17g', n + 1, mu, var))
end

local function keep(s, n)
  local out = {}
  for line in string.gmatch(s, '[^\n]+') do
    if #out == n then break end
    out[#out + 1] = line
  end
  return table.concat(out, '\n')
end

local bucket = math.floor(now / 10000)
if records > 0 then
  if m == nil then
    m, c, ms = minute, 0, slot
  elseif minute > m then
    if c > 0 then fold(ms, c) end
    m, c, ms = minute, 0, slot
  end
  -- an older minute (a replica whose clock is behind) counts in the open one
  c = c + records
  if f == nil then f = m end
  put('m', m)
  put('c', c)
  put('ms', ms)
  put('f', f)
  -- the 10-second bucket, unless a newer bucket holds its place in the ring
  local i = bucket % 7
  local b = ring[i]
  if b == nil or b[1] < bucket then
    b = {bucket, 0}
  end
  if b[1] == bucket then
    b[2] = b[2] + records
    ring[i] = b
    put('w' .. i, bucket .. ' ' .. b[2])
  end
end
if refs ~= '' then
  if r ~= '' then r = refs .. '\n' .. r else r = refs end
  r = keep(r, 5)
  put('r', r)
end
if #set > 0 then
  redis.call('HSET', key, unpack(set))
  redis.call('PEXPIRE', key, ttl)
end

-- the open minute's records, judged against its slot's baseline
local cur, cm, bslot = 0, minute, slot
if m ~= nil and minute <= m then
  cur, cm, bslot = c, m, ms
end
local base = stat(bslot)

-- the last 60 s: the buckets that started within it, and the one it starts in, prorated
local last, lsince = 0, -1
local frac = (now - bucket * 10000) / 10000
for i = 0, 6 do
  local b = ring[i]
  if b ~= nil and b[2] > 0 then
    local add = 0
    if b[1] >= bucket - 5 then
      add = b[2]
    elseif b[1] == bucket - 6 then
      add = math.floor(b[2] * (1 - frac) + 0.5)
    end
    if add > 0 then
      last = last + add
      if lsince < 0 or b[1] * 10000 < lsince then lsince = b[1] * 10000 end
    end
  end
end

local first = 0
if export == 1 then
  if redis.call('SET', xkey, now, 'NX', 'PX', xttl) then
    first = 1
  else
    redis.call('PEXPIRE', xkey, xttl)
  end
end

local dsum, dsince = 0, -1
if denials > 0 then
  redis.call('HINCRBY', dkey, minute, denials)
  local flat = redis.call('HGETALL', dkey)
  local oldest = minute - dwin + 1
  local stale = {}
  for j = 1, #flat, 2 do
    local mi, v = tonumber(flat[j]), tonumber(flat[j + 1])
    if mi == nil or v == nil or mi < oldest then
      stale[#stale + 1] = flat[j]
    else
      dsum = dsum + v
      if dsince < 0 or mi < dsince then dsince = mi end
    end
  end
  if #stale > 0 then redis.call('HDEL', dkey, unpack(stale)) end
  redis.call('PEXPIRE', dkey, (dwin + 1) * 60000)
end

return {cur, cm, last, lsince, base[1], string.format('%.17g', base[2]), string.format('%.17g', base[3]),
  f or -1, first, dsum, dsince, r}
