-- rate: one rate-limit check, for requests that do not enqueue (reads, cancels, retries).
-- The GCRA itself is gcra.lua, prepended to this file by scripts.rs.
--
-- KEYS[1] bucket              {P}:rate:<class>:<tenant>
-- ARGV[1] interval between requests at the sustained rate (microseconds)
-- ARGV[2] burst
--
-- Returns {allowed (1|0), remaining, reset_ms, retry_after_ms}.
-- Invariant: see gcra.lua; one round trip per checked request.

local allowed, remaining, reset, retry = gcra(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))
return {allowed, remaining, reset, retry}
