-- purge_one.lua: deletes one record if it has expired at `now`, in one
-- atomic step. The candidate came from a read of the index in an earlier
-- round trip; this script decides again on the record as it is now, so a
-- record claimed afresh in between is never purged.
--
-- KEYS[1]  the record (a string, format 2: see codec.rs)
-- KEYS[2]  the bucket's index
-- ARGV[1]  now, the caller's clock (ms)
-- ARGV[2]  the record id, raw (the index member)
--
-- Reply: 1 if a record was deleted; 0 if not (its index entry is then
-- put right or dropped, so a purge always makes progress).

local rec_key, index, member = KEYS[1], KEYS[2], ARGV[2]

local head = redis.pcall('GETRANGE', rec_key, 0, 113)
if head == '' then
  -- Already gone (native TTL, release, delete): drop the stale entry.
  redis.call('ZREM', index, member)
  return 0
end
local expires = type(head) == 'string' and string.sub(head, 1, 1) == '2'
  and tonumber(string.sub(head, 75, 94))
if not expires then
  -- Unreadable: leave the record to its TTL and an operator, but stop
  -- offering it to every purge.
  redis.call('ZREM', index, member)
  return 0
end
if expires > tonumber(ARGV[1]) then
  -- Live (re-created since the index was read): put its entry right.
  local sign = string.sub(head, 2, 2) == 'F' and '-' or ''
  redis.call('ZADD', index, sign .. string.sub(head, 75, 94), member)
  return 0
end
redis.call('DEL', rec_key)
redis.call('ZREM', index, member)
return 1
