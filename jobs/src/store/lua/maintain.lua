-- maintain: promote due retries and/or rescue expired leases of one kind, a bounded chunk each.
--
-- KEYS[1] ready list          {P}:ready:<kind>
-- KEYS[2] in-flight zset      {P}:inflight:<kind>
-- KEYS[3] delayed zset        {P}:delayed:<kind>
-- KEYS[4] wake-up list        {P}:signal:<kind>
-- KEYS[5] archive stream      {P}:archive
-- KEYS[6] queued counts       {P}:tenant_queued     (tenant -> jobs in status queued)
-- ARGV[1] job key prefix      {P}:job:
-- ARGV[2] chunk size, ARGV[3] result TTL (s), ARGV[4] done channel,
-- ARGV[5] stream max length, ARGV[6] worker_lost error (JSON),
-- ARGV[7] what to do: 'both' (worker processes' tick), 'promote' or 'rescue' (the
--         scheduler's promote_due and rescue_leases tasks)
--
-- Returns {promoted, rescued, failed, due ids seen, expired ids seen} (a step not asked for
-- sees 0). Callers repeat while one of the seen counts equals the chunk size.
-- Invariants: a rescued attempt has been counted (claim counted it), so a job whose attempts
-- keep dying ends `failed` with worker_lost after max_attempts instead of looping; a rescued
-- job's old attempt token stops matching once the job is no longer `running`; a rescued job
-- is `queued` again and counts in its tenant's queued count (a promoted retry already did:
-- see enqueue.lua).

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local chunk = tonumber(ARGV[2])
local promoted, rescued, failed = 0, 0, 0
local mode = ARGV[7] or 'both'

local due = {}
if mode ~= 'rescue' then
  due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, chunk)
end
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[3], id)
  if redis.call('HGET', ARGV[1] .. id, 'status') == 'queued' then
    -- A promoted retry joins the back of the queue, like a new job: a job that keeps failing
    -- does not jump ahead of the others (or become every breaker probe).
    redis.call('LPUSH', KEYS[1], id)
    redis.call('LPUSH', KEYS[4], '1')
    promoted = promoted + 1
  end
end

local expired = {}
if mode ~= 'promote' then
  expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, chunk)
end
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[2], id)
  local key = ARGV[1] .. id
  local f = redis.call('HMGET', key, 'status', 'attempts', 'max_attempts', 'tenant')
  if f[1] == 'running' then
    redis.call('HDEL', key, 'worker')
    if tonumber(f[2]) >= tonumber(f[3]) then
      redis.call('HSET', key, 'status', 'failed', 'error', ARGV[6], 'finished_at', now)
      redis.call('EXPIRE', key, tonumber(ARGV[3]))
      redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[5], '*', unpack(redis.call('HGETALL', key)))
      redis.call('PUBLISH', ARGV[4], id)
      failed = failed + 1
    else
      redis.call('HSET', key, 'status', 'queued', 'error', ARGV[6])
      redis.call('RPUSH', KEYS[1], id)
      redis.call('LPUSH', KEYS[4], '1')
      redis.call('HINCRBY', KEYS[6], f[4], 1)
      rescued = rescued + 1
    end
  end
end
if promoted + rescued > 0 then
  redis.call('LTRIM', KEYS[4], 0, 63)
end
return {promoted, rescued, failed, #due, #expired}
