-- Dependencies whose breaker is OPEN and whose open wait has elapsed by the server's clock.
-- KEYS[1] open-until schedule (zset scored by the second the breaker may go HALF_OPEN).
local now = redis.call('TIME')
local seconds = tonumber(now[1]) + tonumber(now[2]) / 1000000
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', string.format('%.6f', seconds))
