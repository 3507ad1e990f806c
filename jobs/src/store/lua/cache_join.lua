-- cache_join: before a claimed attempt calls the provider, answer it from the cache, join an
-- identical job that is computing the answer (single-flight), or lead the computation.
--
-- KEYS[1] job hash            {P}:job:<id>
-- KEYS[2] in-flight zset      {P}:inflight:<kind>
-- KEYS[3] archive stream      {P}:archive
-- KEYS[4] cache entry         {P}:cache:<hash>
-- KEYS[5] single-flight lock  {P}:inflight_cache:<hash>   (leader -> id; joined id -> token)
-- KEYS[6] cache counters      {P}:cache_stats
-- ARGV[1] id, ARGV[2] attempt token, ARGV[3] job key prefix {P}:job:,
-- ARGV[4] lock TTL (ms): the attempt's timeout plus a lease, ARGV[5] result TTL (s),
-- ARGV[6] done channel, ARGV[7] stream max length,
-- ARGV[8] '1' on the attempt's first call (counts a join once)
--
-- Returns {what, detail}:
--   'stale'   the attempt no longer owns the job (completed by its leader, cancelled,
--             rescued): stop, write nothing
--   'hit'     the answer was cached: the job is succeeded (cached, zero usage); detail: it
--   'joined'  job `detail` is computing the answer: wait; complete.lua completes this job
--             with it. Call again from time to time: a leader that stopped running (failed,
--             retrying, cancelled, rescued) hands the lead to the next caller
--   'lead'    this attempt computes the answer (call the provider)
-- Invariants: an attempt is fenced by its token, as in complete.lua; at most one running
-- job leads an answer, so N identical concurrent jobs make one provider call while the
-- leader lives; a joined job is never stranded: it stays running under its own lease, and
-- takes the lead when its leader is no longer running.

local f = redis.call('HMGET', KEYS[1], 'token', 'status')
if f[1] ~= ARGV[2] or f[2] ~= 'running' then
  return {'stale', ''}
end

local answer = redis.call('GET', KEYS[4])
if answer then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('HSET', KEYS[1], 'status', 'succeeded', 'result', answer,
    'usage', '{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0}',
    'cached', 1, 'finished_at', now)
  redis.call('HDEL', KEYS[1], 'error', 'next_attempt_at', 'worker')
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('HDEL', KEYS[5], ARGV[1])
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[5]))
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[7], '*', unpack(redis.call('HGETALL', KEYS[1])))
  redis.call('PUBLISH', ARGV[6], ARGV[1])
  redis.call('HINCRBY', KEYS[6], 'hits', 1)
  return {'hit', answer}
end

local leader = redis.call('HGET', KEYS[5], 'leader')
if leader and leader ~= ARGV[1] and redis.call('HGET', ARGV[3] .. leader, 'status') == 'running' then
  redis.call('HSET', KEYS[5], ARGV[1], ARGV[2])
  redis.call('PEXPIRE', KEYS[5], tonumber(ARGV[4]))
  if ARGV[8] == '1' then
    redis.call('HINCRBY', KEYS[6], 'joins', 1)
  end
  return {'joined', leader}
end

-- No live leader: this attempt leads (jobs that joined a previous leader stay joined).
redis.call('HSET', KEYS[5], 'leader', ARGV[1])
redis.call('HDEL', KEYS[5], ARGV[1])
redis.call('PEXPIRE', KEYS[5], tonumber(ARGV[4]))
redis.call('HINCRBY', KEYS[6], 'misses', 1)
return {'lead', ''}
