-- delete.lua: deletes a record whatever its state, fence or format, with
-- its index entry, in one atomic step. For operators.
--
-- KEYS[1]  the record
-- KEYS[2]  the bucket's index
-- ARGV[1]  the record id, raw (the index member)
--
-- Reply: 1 if a record was deleted, 0 if there was none.

local deleted = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return deleted
