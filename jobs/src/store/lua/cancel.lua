-- cancel: end a job at its tenant's request.
--
-- KEYS[1] job hash            {P}:job:<id>
-- KEYS[2] ready list          {P}:ready:<kind>
-- KEYS[3] delayed zset        {P}:delayed:<kind>
-- KEYS[4] in-flight zset      {P}:inflight:<kind>
-- KEYS[5] archive stream      {P}:archive
-- KEYS[6] queued counts       {P}:tenant_queued     (tenant -> jobs in status queued)
-- ARGV[1] id, ARGV[2] tenant, ARGV[3] result TTL (s), ARGV[4] done channel,
-- ARGV[5] cancel channel, ARGV[6] stream max length
--
-- Returns 'cancelled', 'not_found', or the status of a job that already ended.
-- Invariants: a queued job never runs after this (it leaves every queue, and claim skips
-- non-queued ids anyway); a running attempt loses its fencing (status is no longer running),
-- so it cannot write a result, and its process is told on the cancel channel to abort the
-- provider call. A cancelled queued job leaves its tenant's queued count (see enqueue.lua).

local f = redis.call('HMGET', KEYS[1], 'status', 'tenant')
if not f[1] or f[2] ~= ARGV[2] then
  return 'not_found'
end
local status = f[1]
if status ~= 'queued' and status ~= 'running' then
  return status
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('LREM', KEYS[2], 0, ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
if status == 'queued' and redis.call('HINCRBY', KEYS[6], ARGV[2], -1) <= 0 then
  redis.call('HDEL', KEYS[6], ARGV[2])
end
redis.call('HSET', KEYS[1], 'status', 'cancelled', 'finished_at', now)
redis.call('HDEL', KEYS[1], 'next_attempt_at', 'worker')
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[6], '*', unpack(redis.call('HGETALL', KEYS[1])))
redis.call('PUBLISH', ARGV[4], ARGV[1])
if status == 'running' then
  redis.call('PUBLISH', ARGV[5], ARGV[1])
end
return 'cancelled'
