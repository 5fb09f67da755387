-- Reads one breaker and the server's clock in one step, and a batch's progress on the breaker.
-- KEYS[1] breaker hash; KEYS[2] (optional) the batch's progress hash. ARGV[1] the dependency.
-- Returns {json or nil, revision or nil, seconds, microseconds, outcomes of the batch counted}.
local fields = redis.call('HMGET', KEYS[1], 'json', 'revision')
local now = redis.call('TIME')
local counted = 0
if #KEYS > 1 then
  counted = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
end
return {fields[1], fields[2], now[1], now[2], counted}
