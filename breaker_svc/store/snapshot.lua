-- Reads breakers and the current revision at one instant.
-- KEYS: 1 dependency index (zset), 2 revision counter
-- ARGV: 1 breaker hash key prefix, 2 'all' or 'some', 3.. dependency names (with 'some')
-- Returns {revision, seconds, microseconds, name, json, breaker revision, name, json, ...}.
local names
if ARGV[2] == 'all' then
  names = redis.call('ZRANGE', KEYS[1], 0, -1)
else
  names = {}
  for i = 3, #ARGV do names[#names + 1] = ARGV[i] end
end

local now = redis.call('TIME')
local out = {redis.call('GET', KEYS[2]) or '0', now[1], now[2]}
for _, name in ipairs(names) do
  local fields = redis.call('HMGET', ARGV[1] .. name, 'json', 'revision')
  if fields[1] then
    out[#out + 1] = name
    out[#out + 1] = fields[1]
    out[#out + 1] = fields[2] or '0'
  end
end
return out
