-- fail: record a failed attempt; schedule a retry or end the job.
--
-- KEYS[1] job hash            {P}:job:<id>
-- KEYS[2] in-flight zset      {P}:inflight:<kind>
-- KEYS[3] delayed zset        {P}:delayed:<kind>   (id -> due time, ms)
-- KEYS[4] archive stream      {P}:archive
-- KEYS[5] queued counts       {P}:tenant_queued     (tenant -> jobs in status queued)
-- ARGV[1] id, ARGV[2] attempt token, ARGV[3] error (JSON), ARGV[4] retryable ('0'|'1'),
-- ARGV[5] retry delay (ms), ARGV[6] result TTL (s), ARGV[7] done channel,
-- ARGV[8] stream max length
--
-- Returns {0} for a stale attempt, {1, due_ms} when a retry is scheduled, {2} when the job
-- failed for good.
-- Invariant: max_attempts is honoured on this path as on the rescue path: a retry is
-- scheduled only while attempts < max_attempts; a scheduled retry is `queued` again and
-- counts in its tenant's queued count (see enqueue.lua).

local f = redis.call('HMGET', KEYS[1], 'token', 'status', 'attempts', 'max_attempts', 'tenant')
if f[1] ~= ARGV[2] or f[2] ~= 'running' then
  return {0}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[1], 'worker')
if ARGV[4] == '1' and tonumber(f[3]) < tonumber(f[4]) then
  local due = now + tonumber(ARGV[5])
  redis.call('HSET', KEYS[1], 'status', 'queued', 'error', ARGV[3], 'next_attempt_at', due)
  redis.call('ZADD', KEYS[3], due, ARGV[1])
  redis.call('HINCRBY', KEYS[5], f[5], 1)
  return {1, due}
end
redis.call('HSET', KEYS[1], 'status', 'failed', 'error', ARGV[3], 'finished_at', now)
redis.call('HDEL', KEYS[1], 'next_attempt_at')
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[6]))
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[8], '*', unpack(redis.call('HGETALL', KEYS[1])))
redis.call('PUBLISH', ARGV[7], ARGV[1])
return {2}
