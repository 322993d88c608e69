-- complete.lua: for each completion, stores the response and marks the
-- record completed if the caller's fence still holds it
-- (idem_core::check_fence), in one atomic step. One run does one completion
-- or a batch of them (on one server; a cluster client sends them one at a
-- time), each exactly as if it ran alone, in the order given (two may be
-- on one record).
--
-- Completion i (from 0) has KEYS[2i+1 .. 2i+2] and ARGV[7i+1 .. 7i+7];
-- they are named here as for the first completion:
-- KEYS[1]  the record (a string, format 2: see codec.rs)
-- KEYS[2]  the bucket's index
-- ARGV[1]  the caller's fence counter, 20 digits ('-' when the fence cannot
--          belong to this record: it was given out for another bucket)
-- ARGV[2]  now, the caller's clock (ms)
-- ARGV[3]  expires_at of the completed record: now + ttl (ms, 20 digits)
-- ARGV[4]  the record's native TTL (ms, >= 1)
-- ARGV[5]  the record's tail from completed_at to the header blob
--          (codec::completion_tail)
-- ARGV[6]  the body ('' when not kept)
-- ARGV[7]  the record id, raw (the index member)
--
-- The reply holds one reply per completion, in order, each one of
--   {'ok'} | {'gone'} | {'taken', current fence counter} |
--          {'done'} | {'corrupt', what}

local function complete(k, a)
  local rec_key, index = KEYS[k + 1], KEYS[k + 2]

  -- The head alone: a completed record's body is not needed to refuse it.
  -- GETRANGE of a missing key is ''; of another type (a format-1 hash), an
  -- error, which pcall turns into a table.
  local head = redis.pcall('GETRANGE', rec_key, 0, 113)
  if type(head) == 'table' then
    return {'corrupt', 'the record is not a string (record format 1?)'}
  end
  -- Absent and expired are the same: an in-flight record past its expires_at
  -- is not resurrected by a late completion.
  if head == '' then
    return {'gone'}
  end
  if string.sub(head, 1, 1) ~= '2' or #head < 114 then
    return {'corrupt', 'record format version ' .. string.sub(head, 1, 1)}
  end
  local expires = tonumber(string.sub(head, 75, 94))
  if not expires then
    return {'corrupt', 'expires_at is not a number'}
  end
  if expires <= tonumber(ARGV[a + 2]) then
    return {'gone'}
  end
  local fence = string.sub(head, 35, 54)
  if fence ~= ARGV[a + 1] then
    return {'taken', fence}
  end
  local state = string.sub(head, 2, 2)
  if state == 'C' then
    return {'done'}
  end
  if state ~= 'F' then
    return {'corrupt', 'unknown state'}
  end

  -- Version, fingerprint, fence and created_at stay; the rest is new.
  redis.call('SET', rec_key,
    '2C' .. string.sub(head, 3, 74) .. ARGV[a + 3] .. ARGV[a + 5] .. ARGV[a + 6],
    'PX', ARGV[a + 4])
  redis.call('ZADD', index, ARGV[a + 3], ARGV[a + 7])
  return {'ok'}
end

local replies = {}
for i = 0, #KEYS / 2 - 1 do
  replies[i + 1] = complete(2 * i, 7 * i)
end
return replies
