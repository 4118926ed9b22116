-- settle.lua: correct a reservation made by reserve.lua, never rejecting.
--
-- KEYS[i]   the budget's hash (see reserve.lua)
-- ARGV[1]   buckets per window
-- ARGV[2]   refund: records to give back to the bucket the reservation was taken in
--           (negative: records to charge now, in the current bucket)
-- ARGV[3]   1 to give back the reservation's request too (a cancelled reservation), else 0
-- ARGV[3+4i-3..3+4i] for KEYS[i]: records limit, requests limit, bucket width ms, the bucket
--           the reservation was taken in
--
-- Returns per key: remaining, reset_ms. A refund to a bucket that has already left the window
-- gives nothing back: those records no longer count. window.go does the same in process.
if redis.replicate_commands then
  pcall(redis.replicate_commands)
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local nb = tonumber(ARGV[1])
local refund = tonumber(ARGV[2])
local request = tonumber(ARGV[3]) == 1

-- take removes up to v from field f of key, deleting it when nothing is left.
local function take(key, f, v)
  local cur = tonumber(redis.call('HGET', key, f) or '0') or 0
  local d = math.min(cur, v)
  if cur - d <= 0 then
    redis.call('HDEL', key, f)
  else
    redis.call('HINCRBY', key, f, -d)
  end
end

local out = {}
for i, key in ipairs(KEYS) do
  local base = 3 + (i - 1) * 4
  local limit = tonumber(ARGV[base + 1])
  local reqs = tonumber(ARGV[base + 2])
  local width = tonumber(ARGV[base + 3])
  local at = tonumber(ARGV[base + 4])
  local cur = math.floor(now / width)
  local oldest = cur - nb
  if refund > 0 and at >= oldest then take(key, 'r' .. at, refund) end
  if request and reqs > 0 and at >= oldest then take(key, 'q' .. at, 1) end
  if refund < 0 then
    redis.call('HINCRBY', key, 'r' .. cur, -refund)
    redis.call('PEXPIRE', key, (nb + 1) * width)
  end

  local flat = redis.call('HGETALL', key)
  local stale = {}
  local nrec, newest = 0, -1
  for j = 1, #flat, 2 do
    local f = flat[j]
    local kind = string.sub(f, 1, 1)
    local idx = tonumber(string.sub(f, 2))
    local v = tonumber(flat[j + 1])
    if idx == nil or v == nil or idx < oldest or v <= 0 or (kind ~= 'r' and kind ~= 'q') then
      stale[#stale + 1] = f
    else
      if idx > cur then idx = cur end
      if kind == 'r' then nrec = nrec + v end
      if idx > newest then newest = idx end
    end
  end
  if #stale > 0 then
    redis.call('HDEL', key, unpack(stale))
  end
  local reset = 0
  if newest >= 0 then reset = (newest + nb + 1) * width - now end
  out[#out + 1] = math.max(0, limit - nrec)
  out[#out + 1] = reset
end
return out
