-- Dependencies whose timer is due by the server's clock (an OPEN wait elapsed, a HALF_OPEN
-- trial past its deadline). KEYS[1] the timer schedule (zset scored by the due second).
local now = redis.call('TIME')
local seconds = tonumber(now[1]) + tonumber(now[2]) / 1000000
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', string.format('%.6f', seconds))
