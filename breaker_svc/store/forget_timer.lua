-- Drops a timer schedule entry whose breaker does not exist, in one step: a breaker created
-- meanwhile keeps its entry (its commit re-adds it anyway).
-- KEYS[1] the timer schedule (zset), KEYS[2] the breaker hash. ARGV[1] the dependency.
if redis.call('EXISTS', KEYS[2]) == 0 then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
