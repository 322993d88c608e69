-- purge_one.lua: deletes one record if it has expired at `now`, in one
-- atomic step. The candidate came from a read of the expiry index in an
-- earlier round trip; this script decides again on the record as it is now,
-- so a record claimed afresh in between is never purged.
--
-- KEYS[1]  the record hash
-- KEYS[2]  the bucket's expiry index
-- KEYS[3]  the bucket's in-flight index
-- ARGV[1]  now, the caller's clock (ms)
-- ARGV[2]  the record id in hex (the index member)
--
-- Reply: 1 if a record was deleted; 0 if not (its index entries are then
-- repaired or dropped, so a purge always makes progress).

local rec, expiry, inflight = KEYS[1], KEYS[2], KEYS[3]
local member = ARGV[2]

local expires = redis.call('HGET', rec, 'expires_at')
if not expires then
  -- Already gone (native TTL, release, delete): drop the stale entries.
  redis.call('ZREM', expiry, member)
  redis.call('ZREM', inflight, member)
  return 0
end
local expires_ms = tonumber(expires)
if not expires_ms then
  -- Unreadable: leave the record to its TTL and an operator, but stop
  -- offering it to every purge.
  redis.call('ZREM', expiry, member)
  return 0
end
if expires_ms > tonumber(ARGV[1]) then
  -- Live (re-created since the index was read): put its entry right.
  redis.call('ZADD', expiry, expires, member)
  return 0
end
redis.call('DEL', rec)
redis.call('ZREM', expiry, member)
redis.call('ZREM', inflight, member)
return 1
