-- reserve.lua: take n records and one request from every budget in KEYS, or nothing.
--
-- KEYS[i]   the budget's hash: field "r<bucket>" = records, "q<bucket>" = requests
-- ARGV[1]   n, the records to take
-- ARGV[2]   buckets per window (the window counts buckets+1 of them: the current one too)
-- ARGV[2+3i-2..2+3i] for KEYS[i]: records limit, requests limit (0: none), bucket width ms
--
-- Returns {rejected_any, then per key: rejected, remaining, reset_ms, retry_ms, bucket}.
-- Time is the server's (TIME), so every Veil replica counts on the same clock. window.go
-- does the same in process; keep the two in step.
if redis.replicate_commands then
  pcall(redis.replicate_commands)
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = tonumber(ARGV[1])
local nb = tonumber(ARGV[2])
local need_rec = math.max(n, 1)

-- scan sums the budget's buckets still in the window, deletes the ones that left it and
-- returns the window's view. Its tables are indexed by bucket offset in the window (1 for
-- the oldest, nb+1 for the current bucket), not by bucket index: small keys keep them arrays.
local function scan(key, width)
  local w = {cur = math.floor(now / width), width = width, rec = {}, req = {}, nrec = 0, nreq = 0}
  w.oldest = w.cur - nb
  local flat = redis.call('HGETALL', key)
  local stale = {}
  for j = 1, #flat, 2 do
    local f = flat[j]
    local kind = string.sub(f, 1, 1)
    local idx = tonumber(string.sub(f, 2))
    local v = tonumber(flat[j + 1])
    if idx == nil or v == nil or idx < w.oldest or v <= 0 or (kind ~= 'r' and kind ~= 'q') then
      stale[#stale + 1] = f
    else
      if idx > w.cur then idx = w.cur end -- a clock that went back: count as current
      local off = idx - w.oldest + 1
      if kind == 'r' then
        w.rec[off] = (w.rec[off] or 0) + v
        w.nrec = w.nrec + v
      else
        w.req[off] = (w.req[off] or 0) + v
        w.nreq = w.nreq + v
      end
    end
  end
  if #stale > 0 then
    redis.call('HDEL', key, unpack(stale))
  end
  return w
end

-- free_at is the time the bucket at offset off leaves the window.
local function free_at(w, off)
  return (w.oldest + off + nb) * w.width
end

-- wait is how long until need units of m have left the window; -1 for never.
local function wait(w, m, need)
  if need <= 0 then return 0 end
  local freed = 0
  for off = 1, nb + 1 do
    freed = freed + (m[off] or 0)
    if freed >= need then return free_at(w, off) - now end
  end
  return -1
end

local function reset(w)
  local newest = -1
  for off, v in pairs(w.rec) do if v > 0 and off > newest then newest = off end end
  for off, v in pairs(w.req) do if v > 0 and off > newest then newest = off end end
  if newest < 0 then return 0 end
  return free_at(w, newest) - now
end

local ws = {}
local out = {0}
local rejected_any = false
for i, key in ipairs(KEYS) do
  local base = 2 + (i - 1) * 3
  local limit = tonumber(ARGV[base + 1])
  local reqs = tonumber(ARGV[base + 2])
  local w = scan(key, tonumber(ARGV[base + 3]))
  w.limit, w.reqs = limit, reqs
  ws[i] = w
  local rejected, retry = 0, 0
  if w.nrec + need_rec > limit then
    rejected = 1
    if need_rec > limit then retry = -1 else retry = wait(w, w.rec, w.nrec + need_rec - limit) end
  end
  if reqs > 0 and w.nreq + 1 > reqs then
    rejected = 1
    local r = wait(w, w.req, w.nreq + 1 - reqs)
    if r < 0 or (retry >= 0 and r > retry) then retry = r end
  end
  if retry < 0 then retry = free_at(w, nb + 1) - now end
  if rejected == 1 then rejected_any = true end
  local o = 2 + (i - 1) * 5
  out[o] = rejected
  out[o + 1] = math.max(0, limit - w.nrec)
  out[o + 2] = reset(w)
  out[o + 3] = retry
  out[o + 4] = w.cur
end

if rejected_any then
  out[1] = 1
  for i = 1, #KEYS do
    local o = 2 + (i - 1) * 5
    if out[o] == 0 then out[o + 3] = 0 end
  end
  return out
end

for i, key in ipairs(KEYS) do
  local w = ws[i]
  if n > 0 then
    redis.call('HINCRBY', key, 'r' .. w.cur, n)
    w.rec[nb + 1] = (w.rec[nb + 1] or 0) + n
    w.nrec = w.nrec + n
  end
  if w.reqs > 0 then
    redis.call('HINCRBY', key, 'q' .. w.cur, 1)
    w.req[nb + 1] = (w.req[nb + 1] or 0) + 1
    w.nreq = w.nreq + 1
  end
  if n > 0 or w.reqs > 0 then
    redis.call('PEXPIRE', key, (nb + 1) * w.width)
  end
  local o = 2 + (i - 1) * 5
  out[o + 1] = math.max(0, w.limit - w.nrec)
  out[o + 2] = reset(w)
end
return out
