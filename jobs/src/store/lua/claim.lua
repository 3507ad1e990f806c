-- claim: start one attempt of each of the oldest ready jobs of a kind, up to a number.
--
-- KEYS[1] ready list          {P}:ready:<kind>
-- KEYS[2] in-flight zset      {P}:inflight:<kind>   (id -> lease expiry, ms)
-- KEYS[3] queued counts       {P}:tenant_queued     (tenant -> jobs in status queued)
-- KEYS[4] wake-up list        {P}:signal:<kind>
-- ARGV[1] job key prefix      {P}:job:
-- ARGV[2] lease in ms
-- ARGV[3] worker id (for operators: who runs it)
-- ARGV[4] most jobs to claim (the caller's free slots: it never claims work it cannot start)
--
-- Returns {ids left in the ready list, then 7 fields per claimed job:
-- id, token, attempts, tenant, spec, created_at, max_attempts}.
-- Invariants: the attempt counts from the moment it is claimed (a crash still spends it);
-- each claim gets a new attempt token, which fences every later write of this attempt;
-- ids of cancelled or expired jobs are skipped (at most 16 of them per call); the job leaves
-- `queued`, so its tenant's queued count drops by one (see enqueue.lua); when the ready list
-- is left empty, its wake-up tokens are stale (every push of an id pushes a token in the
-- same script) and are dropped, so an idle worker sleeps until the next push.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local want = tonumber(ARGV[4] or '1')
local expiry = now + tonumber(ARGV[2])
local out = {0}
local claimed, skipped = 0, 0

while claimed < want and skipped < 16 do
  local id = redis.call('RPOP', KEYS[1])
  if not id then
    break
  end
  local key = ARGV[1] .. id
  local f = redis.call('HMGET', key, 'status', 'token', 'attempts', 'tenant', 'spec',
    'created_at', 'max_attempts', 'started_at')
  if f[1] == 'queued' then
    local token = (tonumber(f[2]) or 0) + 1
    local attempts = (tonumber(f[3]) or 0) + 1
    redis.call('HSET', key, 'status', 'running', 'token', token, 'attempts', attempts,
      'worker', ARGV[3], 'attempt_started_at', now, 'started_at', f[8] or now)
    redis.call('HDEL', key, 'next_attempt_at')
    redis.call('ZADD', KEYS[2], expiry, id)
    if redis.call('HINCRBY', KEYS[3], f[4], -1) <= 0 then
      redis.call('HDEL', KEYS[3], f[4])
    end
    claimed = claimed + 1
    out[#out + 1] = id
    out[#out + 1] = token
    out[#out + 1] = attempts
    out[#out + 1] = f[4]
    out[#out + 1] = f[5]
    out[#out + 1] = f[6]
    out[#out + 1] = f[7]
  else
    skipped = skipped + 1
  end
end

out[1] = redis.call('LLEN', KEYS[1])
if out[1] == 0 then
  redis.call('DEL', KEYS[4])
end
return out
