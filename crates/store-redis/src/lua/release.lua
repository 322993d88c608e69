-- release.lua: deletes the in-flight record, if the caller's fence still
-- holds it (idem_core::check_fence), in one atomic step, so that the next
-- request with the key executes afresh.
--
-- KEYS[1]  the record hash
-- KEYS[2]  the bucket's expiry index
-- KEYS[3]  the bucket's in-flight index
-- ARGV[1]  the caller's fence counter ('-' when it cannot be this record's)
-- ARGV[2]  the record id in hex (the index member)
--
-- Replies: {'ok'} | {'gone'} | {'taken', current fence counter} |
--          {'done'} | {'corrupt', what}
--
-- Release takes no `now` (the trait gives none): a record that expired but
-- is still physically there is released like a live one, which deletes it
-- either way. The bucket's fence counter is not touched: it is what keeps
-- the next claim's fence above this one.

local rec, expiry, inflight = KEYS[1], KEYS[2], KEYS[3]

local v, fence, state = unpack(redis.call('HMGET', rec, 'v', 'fence', 'state'))
if not v then
  return {'gone'}
end
if v ~= '1' then
  return {'corrupt', 'record format version ' .. tostring(v)}
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

redis.call('DEL', rec)
redis.call('ZREM', expiry, ARGV[2])
redis.call('ZREM', inflight, ARGV[2])
return {'ok'}
