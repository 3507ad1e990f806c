-- claim: start one attempt of the oldest ready job of a kind.
--
-- KEYS[1] ready list          {P}:ready:<kind>
-- KEYS[2] in-flight zset      {P}:inflight:<kind>   (id -> lease expiry, ms)
-- KEYS[3] queued counts       {P}:tenant_queued     (tenant -> jobs in status queued)
-- ARGV[1] job key prefix      {P}:job:
-- ARGV[2] lease in ms
-- ARGV[3] worker id (for operators: who runs it)
--
-- Returns nil when nothing is ready, else
-- {id, token, attempts, tenant, spec, created_at, max_attempts}.
-- Invariants: the attempt counts from the moment it is claimed (a crash still spends it);
-- each claim gets a new attempt token, which fences every later write of this attempt;
-- at most a few ids are popped per call (ids of cancelled or expired jobs are skipped);
-- the job leaves `queued`, so its tenant's queued count drops by one (see enqueue.lua).

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

for _ = 1, 16 do
  local id = redis.call('RPOP', KEYS[1])
  if not id then
    return nil
  end
  local key = ARGV[1] .. id
  if redis.call('HGET', key, 'status') == 'queued' then
    local token = redis.call('HINCRBY', key, 'token', 1)
    local attempts = redis.call('HINCRBY', key, 'attempts', 1)
    redis.call('HSET', key, 'status', 'running', 'worker', ARGV[3], 'attempt_started_at', now)
    redis.call('HSETNX', key, 'started_at', now)
    redis.call('HDEL', key, 'next_attempt_at')
    redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), id)
    local f = redis.call('HMGET', key, 'tenant', 'spec', 'created_at', 'max_attempts')
    if redis.call('HINCRBY', KEYS[3], f[1], -1) <= 0 then
      redis.call('HDEL', KEYS[3], f[1])
    end
    return {id, token, attempts, f[1], f[2], f[3], f[4]}
  end
end
return nil
