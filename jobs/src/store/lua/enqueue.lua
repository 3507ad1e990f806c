-- enqueue: admit and accept a new job, in one call (the submit hot path is this one round
-- trip). gcra.lua is prepended to this file by scripts.rs.
--
-- KEYS[1] job hash            {P}:job:<id>
-- KEYS[2] ready list          {P}:ready:<kind>
-- KEYS[3] wake-up list        {P}:signal:<kind>
-- KEYS[4] tenant index        {P}:tenant:<tenant>
-- KEYS[5] idempotency key     {P}:idem:<tenant>:<key>   (ignored when ARGV[6] == '0')
-- KEYS[6] submit rate bucket  {P}:rate:submit:<tenant>  (ignored when ARGV[8] == '0')
-- KEYS[7] queued counts       {P}:tenant_queued         (tenant -> jobs in status queued)
-- KEYS[8] cache entry         {P}:cache:<hash>          (ignored when ARGV[11] == '0')
-- KEYS[9] cache counters      {P}:cache_stats
-- KEYS[10] archive stream     {P}:archive
-- ARGV[1] id, ARGV[2] tenant, ARGV[3] kind, ARGV[4] spec (JSON), ARGV[5] max_attempts,
-- ARGV[6] idempotency TTL in seconds ('0': no idempotency key),
-- ARGV[7] digest of the request body ('': not compared),
-- ARGV[8] rate interval in microseconds ('0': no rate limit), ARGV[9] rate burst,
-- ARGV[10] most jobs the tenant may have queued ('0': no cap)
-- ARGV[11] '1': the result cache may answer ('0': `"cache": false`, or no cache)
-- ARGV[12] the answer from the caller's in-process cache ('': none; then KEYS[8] is read)
-- ARGV[13] result TTL (s), ARGV[14] archive stream max length
--
-- Returns {outcome, id, created_at_ms, rate_remaining, rate_reset_ms, retry_after_ms, answer}:
--   'created'       a new job (id, created_at_ms)
--   'existing'      the idempotency key already names job `id` with the same body
--   'key_reused'    the idempotency key names job `id`, submitted with another body
--   'rate_limited'  over the tenant's submit rate (retry_after_ms); nothing written
--   'queue_full'    the tenant has ARGV[10] jobs queued already; nothing written
--   'cached'        a new job, already `succeeded` from the cache (answer: its result JSON):
--                   never queued, so it neither meets nor counts in the queued cap
-- The rate fields are 0 when no rate limit applies; answer is '' unless 'cached'.
-- Invariants: a job hash exists before its id is on any queue, and the id is pushed once;
-- an idempotency key names one job (its value is `<id>:<digest>`), and a repeat never
-- counts against the queued cap; {P}:tenant_queued[tenant] counts the tenant's jobs whose
-- status is `queued`: every script moving a job into `queued` (enqueue, fail with a retry,
-- release, maintain's rescue, retry) adds one, every script moving one out (claim, cancel)
-- takes one away, never below zero.

local remaining, reset, retry = 0, 0, 0
if ARGV[8] ~= '0' then
  local allowed
  allowed, remaining, reset, retry = gcra(KEYS[6], tonumber(ARGV[8]), tonumber(ARGV[9]))
  if allowed == 0 then
    return {'rate_limited', '', 0, remaining, reset, retry, ''}
  end
end

if ARGV[6] ~= '0' then
  local existing = redis.call('GET', KEYS[5])
  if existing then
    local id, digest = string.match(existing, '^([^:]*):?(.*)$')
    if ARGV[7] ~= '' and digest ~= '' and digest ~= ARGV[7] then
      return {'key_reused', id, 0, remaining, reset, retry, ''}
    end
    return {'existing', id, 0, remaining, reset, retry, ''}
  end
end

local answer = false
if ARGV[11] == '1' then
  if ARGV[12] ~= '' then
    answer = ARGV[12]
  else
    answer = redis.call('GET', KEYS[8])
  end
end

if not answer and ARGV[10] ~= '0' then
  local queued = tonumber(redis.call('HGET', KEYS[7], ARGV[2]) or '0')
  if queued >= tonumber(ARGV[10]) then
    return {'queue_full', '', 0, remaining, reset, retry, ''}
  end
end

if ARGV[6] ~= '0' then
  local value = ARGV[1]
  if ARGV[7] ~= '' then
    value = value .. ':' .. ARGV[7]
  end
  redis.call('SET', KEYS[5], value, 'EX', tonumber(ARGV[6]))
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

if answer then
  -- Answered from the cache: the job is born succeeded, with no provider call and no usage.
  redis.call('HSET', KEYS[1],
    'id', ARGV[1], 'tenant', ARGV[2], 'kind', ARGV[3], 'spec', ARGV[4],
    'status', 'succeeded', 'attempts', 0, 'max_attempts', ARGV[5],
    'created_at', now, 'finished_at', now, 'token', 0, 'cached', 1, 'result', answer,
    'usage', '{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0}')
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[13]))
  redis.call('ZADD', KEYS[4], now, ARGV[1])
  redis.call('HINCRBY', KEYS[9], 'hits', 1)
  redis.call('XADD', KEYS[10], 'MAXLEN', '~', ARGV[14], '*', unpack(redis.call('HGETALL', KEYS[1])))
  return {'cached', ARGV[1], now, remaining, reset, retry, answer}
end

redis.call('HSET', KEYS[1],
  'id', ARGV[1], 'tenant', ARGV[2], 'kind', ARGV[3], 'spec', ARGV[4],
  'status', 'queued', 'attempts', 0, 'max_attempts', ARGV[5],
  'created_at', now, 'token', 0, 'cached', 0)
redis.call('LPUSH', KEYS[2], ARGV[1])
-- One wake-up token per job; the list stays short, and is never empty after a push,
-- which is all a blocked worker needs.
redis.call('LPUSH', KEYS[3], '1')
redis.call('LTRIM', KEYS[3], 0, 63)
redis.call('ZADD', KEYS[4], now, ARGV[1])
redis.call('HINCRBY', KEYS[7], ARGV[2], 1)
return {'created', ARGV[1], now, remaining, reset, retry, ''}
