-- trim_index: drop from one tenant's index the ids of jobs Redis no longer holds, among the
-- ids created before a cutoff, one bounded chunk per call (the scheduler's key_expiry task).
--
-- KEYS[1] tenant index        {P}:tenant:<tenant>   (zset of job ids scored by created_at ms)
-- ARGV[1] job key prefix      {P}:job:
-- ARGV[2] cutoff (ms): only ids created before it are looked at (now - result TTL)
-- ARGV[3] chunk size
-- ARGV[4] offset: ids before the cutoff that earlier calls of this pass kept
--
-- Returns {ids seen, ids removed}. Callers add (seen - removed) to the offset and call again
-- while seen equals the chunk size.
-- Invariant: an id leaves the index only while its job hash does not exist, checked in the
-- same atomic call, so a job restored at that moment (retry.lua re-creates the hash and
-- re-adds the id) keeps its entry. A job gone from Redis is still listed, from Postgres.

local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[2],
  'LIMIT', tonumber(ARGV[4]), tonumber(ARGV[3]))
local removed = 0
for _, id in ipairs(ids) do
  if redis.call('EXISTS', ARGV[1] .. id) == 0 then
    redis.call('ZREM', KEYS[1], id)
    removed = removed + 1
  end
end
return {#ids, removed}
