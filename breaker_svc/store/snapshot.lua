-- Reads breakers, the current revision and the log's epoch at one instant. The epoch is created
-- when the log has none yet, or replaced when it was made under another Redis process
-- (incarnation.lua, prepended), so the snapshot always names the epoch its revision is in.
-- KEYS: 1 dependency index (zset), 2 revision counter, 3 log epoch, 4 run_id
-- ARGV: 1 breaker hash key prefix, 2 a fresh epoch (used only if the log needs one),
--       3 'all' or 'some', 4.. dependency names (with 'some')
-- Returns {revision, seconds, microseconds, epoch, name, json, breaker revision, name, json, ...}.
ensure_incarnation(KEYS[4], KEYS[3], ARGV[2])
local epoch = redis.call('GET', KEYS[3])

local names
if ARGV[3] == 'all' then
  names = redis.call('ZRANGE', KEYS[1], 0, -1)
else
  names = {}
  for i = 4, #ARGV do names[#names + 1] = ARGV[i] end
end

local now = redis.call('TIME')
local out = {redis.call('GET', KEYS[2]) or '0', now[1], now[2], epoch}
for _, name in ipairs(names) do
  local fields = redis.call('HMGET', ARGV[1] .. name, 'json', 'revision')
  if fields[1] then
    out[#out + 1] = name
    out[#out + 1] = fields[1]
    out[#out + 1] = fields[2] or '0'
  end
end
return out
