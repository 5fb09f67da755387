-- Reads one breaker and the server's clock in one step.
-- KEYS[1] breaker hash. Returns {json or nil, revision or nil, seconds, microseconds}.
local fields = redis.call('HMGET', KEYS[1], 'json', 'revision')
local now = redis.call('TIME')
return {fields[1], fields[2], now[1], now[2]}
