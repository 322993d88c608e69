-- claim.lua: decides claims (idem_core::decide_claim) and, for each one
-- whose decision is to execute, writes the in-flight record with a new
-- fence, in one atomic step. One run decides one claim or a batch of them
-- (on one server; a cluster client sends them one at a time), each exactly
-- as if it ran alone, in the order given (two may be on one record).
--
-- Claim i (from 0) has KEYS[3i+1 .. 3i+3] and ARGV[7i+1 .. 7i+7]; they are
-- named here as for the first claim:
-- KEYS[1]  the record (a string, format 2: see codec.rs for the offsets)
-- KEYS[2]  the bucket's fence counter (a string holding an integer)
-- KEYS[3]  the bucket's index (zset: raw id -> -expires_at in flight,
--          +expires_at completed)
-- ARGV[1]  the request's fingerprint (32 raw bytes)
-- ARGV[2]  now, the caller's clock (ms, 20 digits)
-- ARGV[3]  expires_at of the in-flight record written now (ms, 20 digits)
-- ARGV[4]  lease_expires_at of a claim made now (ms, 20 digits)
-- ARGV[5]  the record's native TTL (ms, >= 1): expires_at - now
-- ARGV[6]  the record id, raw (the index member)
-- ARGV[7]  index entries whose records expired at or before this (ms) are
--          dropped, now and then (see below)
--
-- The reply holds one reply per claim, in order, each an array whose first
-- element is a tag:
--   {'claimed', fence counter, takeover 0|1}
--   {'mismatch', record head}  {'busy', record head}
--   {'replay', record}         {'corrupt', what}
-- The caller reads expires_at, lease_expires_at or the response from the
-- record it is sent, so the script parses no more than it decides on.
--
-- Every time is the caller's, passed in: the decision never reads the Redis
-- clock. The Redis clock is read only to give a new fence a floor.

local function claim(k, a, clock)
  local rec_key, fence_key, index = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
  local now = tonumber(ARGV[a + 2])

  -- pcall: a key of another type (a format-1 hash) is corrupt, not an error.
  local rec = redis.pcall('GET', rec_key)
  if type(rec) == 'table' then
    return {'corrupt', 'the record is not a string (record format 1?)'}
  end

  local takeover = 0
  -- A record that exists but has expired is absent: it is overwritten below
  -- as if it were not there (no takeover, a new fingerprint is fine).
  if rec then
    if string.sub(rec, 1, 1) ~= '2' or #rec < 114 then
      return {'corrupt', 'record format version ' .. string.sub(rec, 1, 1)}
    end
    local expires = tonumber(string.sub(rec, 75, 94))
    if not expires then
      return {'corrupt', 'expires_at is not a number'}
    end
    if expires > now then
      -- The fingerprint comes before the state: a changed payload is told so
      -- even while the first request runs.
      if string.sub(rec, 3, 34) ~= ARGV[a + 1] then
        return {'mismatch', string.sub(rec, 1, 114)}
      end
      local state = string.sub(rec, 2, 2)
      if state == 'C' then
        return {'replay', rec}
      elseif state ~= 'F' then
        return {'corrupt', 'unknown state'}
      end
      local lease = tonumber(string.sub(rec, 95, 114))
      if not lease then
        return {'corrupt', 'lease_expires_at is not a number'}
      end
      if lease > now then
        return {'busy', rec}
      end
      takeover = 1
    end
  end

  -- The new fence counter: one more than the largest this bucket ever gave
  -- out, and never below the server clock in microseconds (read once per
  -- run, below), so that fences keep growing even if the counter key is
  -- lost (a restart without persistence, a failover that lost writes, a
  -- FLUSHALL). The clock is nearly always ahead of the last counter, so it
  -- is written at once and the old value read in the same call (SET ...
  -- GET); only when it is not (a second claim of the bucket in one run or
  -- one microsecond, a clock that stepped back) is the counter written
  -- again. Counters stay below 2^53, so Lua's doubles hold them exactly;
  -- '%020.0f' writes the 20 zero-padded digits of codec.rs. ('%020d' is a
  -- little cheaper, but Lua 5.1 formats it through a C long, which a 32-bit
  -- build of Redis would cut to 32 bits.)
  local counter = clock
  local fence = string.format('%020.0f', counter)
  local last = tonumber(redis.call('SET', fence_key, fence, 'GET') or '0') or 0
  if last >= counter then
    counter = last + 1
    fence = string.format('%020.0f', counter)
    redis.call('SET', fence_key, fence)
  end

  local value
  if takeover == 1 then
    -- Same request, lease lapsed: a new holder, a new lease; the record keeps
    -- its fingerprint and creation time.
    value = '2F' .. string.sub(rec, 3, 34) .. fence .. string.sub(rec, 55, 74)
      .. ARGV[a + 3] .. ARGV[a + 4]
  else
    value = '2F' .. ARGV[a + 1] .. fence .. ARGV[a + 2] .. ARGV[a + 3] .. ARGV[a + 4]
  end
  redis.call('SET', rec_key, value, 'PX', ARGV[a + 5])
  redis.call('ZADD', index, '-' .. ARGV[a + 3], ARGV[a + 6])

  -- Keep the index bounded without a sweeper: Redis deletes records by TTL
  -- but not their index entries. Entries of records that expired before
  -- ARGV[7] (an hour ago) have |score| <= ARGV[7]: live in-flight entries
  -- score below -now and live completed ones above now, so one range holds
  -- exactly the stale ones. Looking costs a call, so only one claim in 16
  -- looks (the counter's low bits are the clock's microseconds, or count
  -- claims in a busy bucket); it then drops up to 64 entries. Each claim adds
  -- at most one entry, so cleaning outpaces growth fourfold on average, and
  -- a purge (the gateway's sweeper) drops stale entries too.
  if counter % 16 == 0 then
    local stale = redis.call('ZRANGEBYSCORE', index, '-' .. ARGV[a + 7], ARGV[a + 7],
      'LIMIT', 0, 64)
    if #stale > 0 then
      redis.call('ZREM', index, unpack(stale))
    end
  end

  return {'claimed', fence, takeover}
end

-- The server clock is read once per run: a run is one atomic step, and the
-- counter logic above already gives every claim of a bucket a larger fence
-- than the one before it, within one microsecond too. One call fewer per
-- claim is a tenth of a batched claim's commands.
local t = redis.call('TIME')
local clock = tonumber(t[1]) * 1000000 + tonumber(t[2])
local replies = {}
for i = 0, #KEYS / 3 - 1 do
  replies[i + 1] = claim(3 * i, 7 * i, clock)
end
return replies
