-- release: give back an attempt that a draining process could not finish.
--
-- KEYS[1] job hash            {P}:job:<id>
-- KEYS[2] in-flight zset      {P}:inflight:<kind>
-- KEYS[3] ready list          {P}:ready:<kind>
-- KEYS[4] wake-up list        {P}:signal:<kind>
-- ARGV[1] id, ARGV[2] attempt token
--
-- Returns 1, or 0 when the attempt is stale.
-- Invariant: a drain does not spend an attempt: the job is queued again at the front of its
-- queue with its attempt count restored.

local f = redis.call('HMGET', KEYS[1], 'token', 'status')
if f[1] ~= ARGV[2] or f[2] ~= 'running' then
  return 0
end
redis.call('HINCRBY', KEYS[1], 'attempts', -1)
redis.call('HSET', KEYS[1], 'status', 'queued')
redis.call('HDEL', KEYS[1], 'worker')
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('RPUSH', KEYS[3], ARGV[1])
redis.call('LPUSH', KEYS[4], '1')
redis.call('LTRIM', KEYS[4], 0, 63)
return 1
