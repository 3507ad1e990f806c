-- enqueue: accept a new job.
--
-- KEYS[1] job hash            {P}:job:<id>
-- KEYS[2] ready list          {P}:ready:<kind>
-- KEYS[3] wake-up list        {P}:signal:<kind>
-- KEYS[4] tenant index        {P}:tenant:<tenant>
-- KEYS[5] idempotency key     {P}:idem:<tenant>:<key>   (ignored when ARGV[6] == '0')
-- ARGV[1] id, ARGV[2] tenant, ARGV[3] kind, ARGV[4] spec (JSON), ARGV[5] max_attempts,
-- ARGV[6] idempotency TTL in seconds ('0': no idempotency key)
--
-- Returns {1, id, created_at_ms} for a new job, or {0, existing_id, 0} when the idempotency key
-- already names a job.
-- Invariant: a job hash exists before its id is on any queue, and the id is pushed once.

if ARGV[6] ~= '0' then
  local existing = redis.call('GET', KEYS[5])
  if existing then
    return {0, existing, 0}
  end
  redis.call('SET', KEYS[5], ARGV[1], 'EX', tonumber(ARGV[6]))
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

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
return {1, ARGV[1], now}
