-- lead: take the scheduler's leader lease if it is free, or renew it if we hold it.
--
-- KEYS[1] leader lease        {P}:scheduler:leader   (value: the leader's id)
-- ARGV[1] our id (the fencing value), ARGV[2] lease (ms)
--
-- Returns 1 if we lead (took or renewed the lease), 0 if another scheduler does.
-- Invariant: only the holder renews; a lease nobody renews expires after ARGV[2] ms and the
-- first candidate to ask takes it, so a dead leader is replaced within one lease.

local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
