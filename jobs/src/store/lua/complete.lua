-- complete: record the result of a successful attempt.
--
-- KEYS[1] job hash            {P}:job:<id>
-- KEYS[2] in-flight zset      {P}:inflight:<kind>
-- KEYS[3] archive stream      {P}:archive
-- ARGV[1] id, ARGV[2] attempt token, ARGV[3] result (JSON), ARGV[4] usage (JSON),
-- ARGV[5] cached ('0'|'1'), ARGV[6] result TTL (s), ARGV[7] done channel, ARGV[8] stream max length
--
-- Returns 1, or 0 when the attempt is stale (its lease was rescued, or the job was cancelled).
-- Invariant: only the current attempt of a running job writes a result; the terminal
-- transition happens once and is appended to the archive stream once.

local f = redis.call('HMGET', KEYS[1], 'token', 'status')
if f[1] ~= ARGV[2] or f[2] ~= 'running' then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], 'status', 'succeeded', 'result', ARGV[3], 'usage', ARGV[4],
  'cached', ARGV[5], 'finished_at', now)
redis.call('HDEL', KEYS[1], 'error', 'next_attempt_at', 'worker')
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[6]))
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[8], '*', unpack(redis.call('HGETALL', KEYS[1])))
redis.call('PUBLISH', ARGV[7], ARGV[1])
return 1
