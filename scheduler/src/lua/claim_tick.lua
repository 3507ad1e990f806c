-- claim_tick: the right to run one tick of one task, for the leader only, once.
--
-- KEYS[1] leader lease        {P}:scheduler:leader
-- KEYS[2] tick guard          {P}:scheduler:tick:<task>:<tick unix secs>
-- ARGV[1] our id, ARGV[2] guard TTL (s): longer than any scheduler looks back for due ticks
--
-- Returns 1: run the tick; 0: it ran (or runs) already; -1: we no longer hold the lease.
-- Invariant: a tick runs at most once across every scheduler, even when two believe they
-- lead (a paused leader whose lease lapsed): the guard is set once, by the lease holder.

if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return -1
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'EX', tonumber(ARGV[2])) then
  return 1
end
return 0
