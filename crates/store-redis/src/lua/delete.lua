-- delete.lua: deletes a record whatever its state and fence, with its index
-- entries, in one atomic step. For operators.
--
-- KEYS[1]  the record hash
-- KEYS[2]  the bucket's expiry index
-- KEYS[3]  the bucket's in-flight index
-- ARGV[1]  the record id in hex (the index member)
--
-- Reply: 1 if a record was deleted, 0 if there was none.

local deleted = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return deleted
