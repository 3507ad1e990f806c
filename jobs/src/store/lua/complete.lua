-- complete: record the result of a successful attempt, fill the result cache, and complete
-- the jobs that joined this one's computation (single-flight, see cache_join.lua).
--
-- KEYS[1] job hash            {P}:job:<id>
-- KEYS[2] in-flight zset      {P}:inflight:<kind>
-- KEYS[3] archive stream      {P}:archive
-- KEYS[4] cache entry         {P}:cache:<hash>            (ignored when ARGV[9] == '0')
-- KEYS[5] single-flight lock  {P}:inflight_cache:<hash>   (ignored when ARGV[9] == '0')
-- ARGV[1] id, ARGV[2] attempt token, ARGV[3] result (JSON), ARGV[4] usage (JSON),
-- ARGV[5] cached ('0'|'1'), ARGV[6] result TTL (s), ARGV[7] done channel, ARGV[8] stream max length
-- ARGV[9] cache TTL (s) ('0': do not cache: `"cache": false`, or the result came from the cache)
-- ARGV[10] job key prefix     {P}:job:
--
-- Returns 1, or 0 when the attempt is stale (its lease was rescued, or the job was cancelled).
-- Invariants: only the current attempt of a running job writes a result; the terminal
-- transition happens once and is appended to the archive stream once; only a successful,
-- current attempt fills the cache; a joined job is completed only while it is still running
-- with the attempt token it joined with (its own fencing), with `cached` set and zero usage,
-- and leaves its in-flight zset (same kind: the kind is part of the cache key).

local f = redis.call('HMGET', KEYS[1], 'token', 'status')
if f[1] ~= ARGV[2] or f[2] ~= 'running' then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function finish(key, id, usage, cached)
  redis.call('HSET', key, 'status', 'succeeded', 'result', ARGV[3], 'usage', usage,
    'cached', cached, 'finished_at', now)
  redis.call('HDEL', key, 'error', 'next_attempt_at', 'worker')
  redis.call('ZREM', KEYS[2], id)
  redis.call('EXPIRE', key, tonumber(ARGV[6]))
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[8], '*', unpack(redis.call('HGETALL', key)))
  redis.call('PUBLISH', ARGV[7], id)
end

finish(KEYS[1], ARGV[1], ARGV[4], ARGV[5])

if ARGV[9] ~= '0' then
  redis.call('SET', KEYS[4], ARGV[3], 'EX', tonumber(ARGV[9]))
  if redis.call('HGET', KEYS[5], 'leader') == ARGV[1] then
    local zero = '{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0}'
    local lock = redis.call('HGETALL', KEYS[5])
    for i = 1, #lock, 2 do
      local id, token = lock[i], lock[i + 1]
      if id ~= 'leader' then
        local key = ARGV[10] .. id
        local w = redis.call('HMGET', key, 'token', 'status')
        if w[1] == token and w[2] == 'running' then
          finish(key, id, zero, 1)
        end
      end
    end
    redis.call('DEL', KEYS[5])
  end
end
return 1
