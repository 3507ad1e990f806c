-- release: give back an attempt without spending it (a draining process could not finish
-- it, or the provider is down while the circuit breaker is open).
--
-- KEYS[1] job hash            {P}:job:<id>
-- KEYS[2] in-flight zset      {P}:inflight:<kind>
-- KEYS[3] ready list          {P}:ready:<kind>
-- KEYS[4] wake-up list        {P}:signal:<kind>
-- KEYS[5] queued counts       {P}:tenant_queued     (tenant -> jobs in status queued)
-- ARGV[1] id, ARGV[2] attempt token, ARGV[3] 'front' (run next: a drained job was
-- running) or 'back' (behind the queue: a breaker's job, so the next probe is another job)
--
-- Returns 1, or 0 when the attempt is stale.
-- Invariant: a release does not spend an attempt: the job is queued again with its attempt
-- count restored, and counts in its tenant's queued count again
-- (see enqueue.lua).

local f = redis.call('HMGET', KEYS[1], 'token', 'status', 'tenant')
if f[1] ~= ARGV[2] or f[2] ~= 'running' then
  return 0
end
redis.call('HINCRBY', KEYS[1], 'attempts', -1)
redis.call('HSET', KEYS[1], 'status', 'queued')
redis.call('HDEL', KEYS[1], 'worker')
redis.call('ZREM', KEYS[2], ARGV[1])
if ARGV[3] == 'back' then
  redis.call('LPUSH', KEYS[3], ARGV[1])
else
  redis.call('RPUSH', KEYS[3], ARGV[1])
end
redis.call('HINCRBY', KEYS[5], f[3], 1)
redis.call('LPUSH', KEYS[4], '1')
redis.call('LTRIM', KEYS[4], 0, 63)
return 1
