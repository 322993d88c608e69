-- complete.lua: stores the response and marks the record completed, if the
-- caller's fence still holds it (idem_core::check_fence), in one atomic step.
--
-- KEYS[1]  the record hash
-- KEYS[2]  the bucket's expiry index
-- KEYS[3]  the bucket's in-flight index
-- ARGV[1]  the caller's fence counter ('-' when the fence cannot belong to
--          this record: it was given out for another bucket)
-- ARGV[2]  now, the caller's clock (ms)
-- ARGV[3]  expires_at of the completed record: now + ttl (ms)
-- ARGV[4]  the record's native TTL (ms, >= 1)
-- ARGV[5]  status
-- ARGV[6]  headers (the codec's blob)
-- ARGV[7]  kept: '1' if the body is kept, '0' if not
-- ARGV[8]  body ('' when not kept)
-- ARGV[9]  the record id in hex (the index member)
--
-- Replies: {'ok'} | {'gone'} | {'taken', current fence counter} |
--          {'done'} | {'corrupt', what}

local rec, expiry, inflight = KEYS[1], KEYS[2], KEYS[3]
local now = tonumber(ARGV[2])

local v, fence, state, expires = unpack(redis.call(
  'HMGET', rec, 'v', 'fence', 'state', 'expires_at'))

-- Absent and expired are the same: an in-flight record past its expires_at
-- is not resurrected by a late completion.
if not v then
  return {'gone'}
end
if v ~= '1' then
  return {'corrupt', 'record format version ' .. tostring(v)}
end
local expires_ms = tonumber(expires)
if not expires_ms then
  return {'corrupt', 'expires_at is not a number'}
end
if expires_ms <= now then
  return {'gone'}
end
if fence ~= ARGV[1] then
  return {'taken', fence}
end
if state == 'completed' then
  return {'done'}
end
if state ~= 'in_flight' then
  return {'corrupt', 'unknown state ' .. tostring(state)}
end

redis.call('HDEL', rec, 'lease_expires_at')
redis.call('HSET', rec, 'state', 'completed', 'completed_at', ARGV[2],
  'expires_at', ARGV[3], 'status', ARGV[5], 'headers', ARGV[6],
  'kept', ARGV[7], 'body', ARGV[8])
redis.call('PEXPIRE', rec, ARGV[4])
redis.call('ZADD', expiry, ARGV[3], ARGV[9])
redis.call('ZREM', inflight, ARGV[9])
return {'ok'}
