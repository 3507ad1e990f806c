-- retry: run a failed or cancelled job again (the dead-letter path), with a fresh budget.
--
-- KEYS[1] job hash            {P}:job:<id>
-- KEYS[2] ready list          {P}:ready:<kind>
-- KEYS[3] wake-up list        {P}:signal:<kind>
-- KEYS[4] tenant index        {P}:tenant:<tenant>
-- KEYS[5] queued counts       {P}:tenant_queued     (tenant -> jobs in status queued)
-- ARGV[1] id, ARGV[2] tenant, ARGV[3] attempts to grant (the spec's max_attempts)
-- ARGV[4..9] the archived job, used only when Redis no longer holds it ('' otherwise):
--   kind, spec, attempts, created_at, started_at, last error (JSON)
-- ARGV[10] most jobs the tenant may have queued ('0': no cap)
--
-- Returns 'queued', 'not_found' (no such job for this tenant), 'queue_full' (the tenant has
-- ARGV[10] jobs queued; nothing written) or the current status when it is not failed or
-- cancelled.
-- Invariant: attempts only grow (the archive relies on it): the new budget raises
-- max_attempts to attempts + ARGV[3] instead of resetting attempts. The job is `queued`
-- again and counts in its tenant's queued count (see enqueue.lua).

local status = redis.call('HGET', KEYS[1], 'status')
if status then
  if redis.call('HGET', KEYS[1], 'tenant') ~= ARGV[2] then
    return 'not_found'
  end
  if status ~= 'failed' and status ~= 'cancelled' then
    return status
  end
elseif ARGV[4] == '' then
  return 'not_found'
end
if ARGV[10] ~= '0' and tonumber(redis.call('HGET', KEYS[5], ARGV[2]) or '0') >= tonumber(ARGV[10]) then
  return 'queue_full'
end
if not status then
  redis.call('HSET', KEYS[1], 'id', ARGV[1], 'tenant', ARGV[2], 'kind', ARGV[4], 'spec', ARGV[5],
    'attempts', ARGV[6], 'created_at', ARGV[7], 'token', 0)
  if ARGV[8] ~= '' then
    redis.call('HSET', KEYS[1], 'started_at', ARGV[8])
  end
  if ARGV[9] ~= '' then
    redis.call('HSET', KEYS[1], 'error', ARGV[9])
  end
end
local attempts = tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0')
redis.call('HSET', KEYS[1], 'status', 'queued', 'max_attempts', attempts + tonumber(ARGV[3]), 'cached', 0)
redis.call('HDEL', KEYS[1], 'result', 'usage', 'finished_at', 'next_attempt_at', 'worker')
redis.call('PERSIST', KEYS[1])
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('HINCRBY', KEYS[5], ARGV[2], 1)
redis.call('LPUSH', KEYS[3], '1')
redis.call('LTRIM', KEYS[3], 0, 63)
redis.call('ZADD', KEYS[4], 'NX', redis.call('HGET', KEYS[1], 'created_at'), ARGV[1])
return 'queued'
