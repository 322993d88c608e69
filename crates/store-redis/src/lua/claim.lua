-- claim.lua: decides a claim (idem_core::decide_claim) and, when the
-- decision is to execute, writes the in-flight record with a new fence, in
-- one atomic step.
--
-- KEYS[1]  the record hash
-- KEYS[2]  the bucket's fence counter (a string holding an integer)
-- KEYS[3]  the bucket's expiry index (zset: record id hex -> expires_at)
-- KEYS[4]  the bucket's in-flight index (zset, all scores 0: record id hex)
-- ARGV[1]  the request's fingerprint (32 raw bytes)
-- ARGV[2]  now, the caller's clock (ms since the epoch)
-- ARGV[3]  lease_expires_at of a claim made now (ms)
-- ARGV[4]  expires_at of the in-flight record written now (ms)
-- ARGV[5]  the record's native TTL (ms, >= 1): expires_at - now
-- ARGV[6]  the record id in hex (the index member)
-- ARGV[7]  index entries that expired before this (ms) are dropped
--
-- Replies, first element a tag:
--   {'claimed', fence counter, takeover 0|1}
--   {'mismatch', expires_at}
--   {'busy', lease_expires_at}
--   {'replay', expires_at, status, headers, kept '1'|'0', body}
--   {'corrupt', what}
--
-- Every time is the caller's, passed in: the decision never reads the Redis
-- clock. The Redis clock is read only to give a new fence a floor.

local rec, fence_key, expiry, inflight = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now = tonumber(ARGV[2])

local v, fp, state, expires, lease = unpack(redis.call(
  'HMGET', rec, 'v', 'fingerprint', 'state', 'expires_at', 'lease_expires_at'))

local takeover = 0
-- A record that exists but has expired is absent: it is overwritten below
-- as if it were not there (no takeover, a new fingerprint is fine).
if v then
  if v ~= '1' then
    return {'corrupt', 'record format version ' .. tostring(v)}
  end
  local expires_ms = tonumber(expires)
  if not expires_ms then
    return {'corrupt', 'expires_at is not a number'}
  end
  if expires_ms > now then
    -- The fingerprint comes before the state: a changed payload is told so
    -- even while the first request runs.
    if fp ~= ARGV[1] then
      return {'mismatch', expires}
    end
    if state == 'in_flight' then
      local lease_ms = tonumber(lease)
      if not lease_ms then
        return {'corrupt', 'lease_expires_at is not a number'}
      end
      if lease_ms > now then
        return {'busy', lease}
      end
      takeover = 1
    elseif state == 'completed' then
      local r = redis.call('HMGET', rec, 'status', 'headers', 'kept', 'body')
      return {'replay', expires, r[1] or '', r[2] or '', r[3] or '', r[4] or ''}
    else
      return {'corrupt', 'unknown state ' .. tostring(state)}
    end
  end
end

-- The new fence counter: one more than the largest this bucket ever gave
-- out, and never below the server clock in microseconds, so that fences
-- keep growing even if the counter key is lost (a restart without
-- persistence, a failover that lost writes, a FLUSHALL). Counters stay
-- below 2^53, so Lua's doubles hold them exactly; '%.0f' writes them
-- without an exponent.
local t = redis.call('TIME')
local counter = tonumber(t[1]) * 1000000 + tonumber(t[2])
local last = tonumber(redis.call('GET', fence_key) or '0') or 0
if last >= counter then
  counter = last + 1
end
local fence = string.format('%.0f', counter)
redis.call('SET', fence_key, fence)

if takeover == 1 then
  -- Same request, lease lapsed: a new holder, a new lease; the record keeps
  -- its fingerprint and creation time.
  redis.call('HSET', rec, 'fence', fence, 'lease_expires_at', ARGV[3],
    'expires_at', ARGV[4])
else
  redis.call('DEL', rec)
  redis.call('HSET', rec, 'v', '1', 'fingerprint', ARGV[1], 'fence', fence,
    'state', 'in_flight', 'created_at', ARGV[2], 'expires_at', ARGV[4],
    'lease_expires_at', ARGV[3])
end
redis.call('PEXPIRE', rec, ARGV[5])
redis.call('ZADD', expiry, ARGV[4], ARGV[6])
redis.call('ZADD', inflight, 0, ARGV[6])

-- Keep the indexes bounded without a sweeper: drop a few entries whose
-- records expired long ago (native TTL has removed those records).
local stale = redis.call('ZRANGEBYSCORE', expiry, '-inf', '(' .. ARGV[7], 'LIMIT', 0, 4)
for _, member in ipairs(stale) do
  redis.call('ZREM', expiry, member)
  redis.call('ZREM', inflight, member)
end

return {'claimed', fence, takeover}
