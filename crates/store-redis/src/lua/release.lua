-- release.lua: deletes the in-flight record, if the caller's fence still
-- holds it (idem_core::check_fence), in one atomic step, so that the next
-- request with the key executes afresh.
--
-- KEYS[1]  the record (a string, format 2: see codec.rs)
-- KEYS[2]  the bucket's index
-- ARGV[1]  the caller's fence counter, 20 digits ('-' when it cannot be
--          this record's)
-- ARGV[2]  the record id, raw (the index member)
--
-- Replies: {'ok'} | {'gone'} | {'taken', current fence counter} |
--          {'done'} | {'corrupt', what}
--
-- Release takes no `now` (the trait gives none): a record that expired but
-- is still physically there is released like a live one, which deletes it
-- either way. The bucket's fence counter is not touched: it is what keeps
-- the next claim's fence above this one.

local rec_key, index = KEYS[1], KEYS[2]

local head = redis.pcall('GETRANGE', rec_key, 0, 113)
if type(head) == 'table' then
  return {'corrupt', 'the record is not a string (record format 1?)'}
end
if head == '' then
  return {'gone'}
end
if string.sub(head, 1, 1) ~= '2' or #head < 114 then
  return {'corrupt', 'record format version ' .. string.sub(head, 1, 1)}
end
local fence = string.sub(head, 35, 54)
if fence ~= ARGV[1] then
  return {'taken', fence}
end
local state = string.sub(head, 2, 2)
if state == 'C' then
  return {'done'}
end
if state ~= 'F' then
  return {'corrupt', 'unknown state'}
end

redis.call('DEL', rec_key)
redis.call('ZREM', index, ARGV[2])
return {'ok'}
