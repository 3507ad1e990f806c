-- gcra: the rate-limit check shared by enqueue.lua and rate.lua. Not a script of its own:
-- scripts.rs prepends this file to both, so there is one implementation.
--
-- gcra(key, interval_us, burst) -> allowed (1|0), remaining, reset_ms, retry_after_ms
--   key          the bucket, {P}:rate:<class>:<tenant>, holding its theoretical arrival
--                time (TAT, microseconds since the epoch, Redis clock)
--   interval_us  time between two requests at the sustained rate
--   burst        requests allowed at once
-- remaining: requests still allowed right now; reset_ms: until the bucket is full again;
-- retry_after_ms: until the next request is allowed (0 when this one was).
-- Invariants (Generic Cell Rate Algorithm): a tenant gets at most `burst` requests at once
-- and one per `interval_us` sustained; a refused request writes nothing, so hammering does
-- not push the next allowed time further out; the key expires when the bucket is full again,
-- so idle tenants cost no memory.
local function gcra(key, interval, burst)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local tat = tonumber(redis.call('GET', key) or '0') or 0
  if tat < now then
    tat = now
  end
  local new_tat = tat + interval
  local diff = now - (new_tat - interval * burst)
  if diff < 0 then
    return 0, 0, math.ceil((tat - now) / 1000), math.ceil(-diff / 1000)
  end
  local ttl_ms = math.ceil((new_tat - now) / 1000)
  -- '%.0f': Lua's default number format keeps 14 digits, too few for microseconds.
  redis.call('SET', key, string.format('%.0f', new_tat), 'PX', string.format('%.0f', ttl_ms))
  return 1, math.floor(diff / interval), ttl_ms, 0
end

