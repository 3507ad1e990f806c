-- heartbeat: renew the leases of the attempts one process is running.
--
-- KEYS[1] in-flight zset      {P}:inflight:<kind>
-- ARGV[1] job key prefix      {P}:job:
-- ARGV[2] lease in ms
-- ARGV[3..] pairs of (id, attempt token)
--
-- Returns the ids whose lease this process no longer holds (rescued, finished or cancelled
-- elsewhere): their attempts must stop.
-- Invariant: only the current attempt (matching token, status running) can extend a lease.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lost = {}
for i = 3, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local f = redis.call('HMGET', ARGV[1] .. id, 'token', 'status')
  if f[1] == token and f[2] == 'running' then
    redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), id)
  else
    lost[#lost + 1] = id
  end
end
return lost
