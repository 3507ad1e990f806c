-- resign: give the leader lease up at shutdown, so another scheduler leads at once.
--
-- KEYS[1] leader lease        {P}:scheduler:leader
-- ARGV[1] our id
--
-- Returns 1 if we held it and deleted it, else 0 (another scheduler's lease is never touched).

if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
