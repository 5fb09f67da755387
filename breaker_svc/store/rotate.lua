-- Ensures the log's epoch is of the running Redis process (see incarnation.lua) and, when asked,
-- rotates it if the log went back under a subscriber: the epoch is still `expected epoch` but the
-- revision counter is below a revision someone saw in it (a regression the run_id did not
-- reveal). Conditional on the epoch, so replicas racing to report one regression rotate once.
-- KEYS: 1 run_id, 2 log epoch, 3 revision counter
-- ARGV: 1 a fresh epoch, 2 expected epoch ('' = only the run_id check), 3 revision seen in it
-- Returns {1 if the epoch was replaced else 0, the current epoch}.
local rotated = ensure_incarnation(KEYS[1], KEYS[2], ARGV[1])
if not rotated and ARGV[2] ~= '' and redis.call('GET', KEYS[2]) == ARGV[2]
    and tonumber(redis.call('GET', KEYS[3]) or '0') < tonumber(ARGV[3]) then
  redis.call('SET', KEYS[2], ARGV[1])
  rotated = true
end
return {rotated and 1 or 0, redis.call('GET', KEYS[2])}
