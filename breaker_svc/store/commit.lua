-- Commits one breaker mutation atomically: compare-and-swap on the breaker's JSON, then (when the
-- state changed) the next global revision, the breaker stamped with it, and the event appended to
-- the stream under the id <revision>-0. All of it or none of it; nothing has a TTL.
-- The log's epoch is ensured first (incarnation.lua, prepended): a log whose epoch key is gone
-- (Redis flushed) or that was made under an earlier Redis process (a restart, possibly from an
-- older save that took the revisions back) gets a new epoch before anything is appended to it, so
-- no revision of the new log can pass for one of the old.
-- KEYS: 1 breaker hash, 2 dependency index (zset), 3 revision counter, 4 event stream,
--       5 timer schedule (zset scored by when the timer must look at the breaker), 6 log epoch,
--       7 the run_id the epoch was made under,
--       8 (optional) the progress hash of the batch the mutation counts outcomes of:
--         dependency -> outcomes of the batch counted; it expires ARGV[11] ms after its creation
-- ARGV: 1 expected JSON ('' = no breaker yet), 2 new JSON, 3 dependency, 4 change JSON ('' = none),
--       5 stream retention, 6 new state, 7 timer due seconds ('' = nothing due),
--       8 a fresh epoch, used only if the log has none or it was made under another Redis process,
--       with KEYS[8]: 9 the batch's progress read, 10 its progress after, 11 retention in ms
-- Returns {1, revision} when committed, {0, 0} when another writer changed the breaker (or the
-- batch's progress: the same batch delivered twice at once) first. The progress is written here,
-- with the breaker, so an outcome is counted exactly when its batch is marked as having it.
local current = redis.call('HGET', KEYS[1], 'json')
if current == false then current = '' end
if current ~= ARGV[1] then
  return {0, 0}
end
local batch = #KEYS >= 8
if batch and tonumber(redis.call('HGET', KEYS[8], ARGV[3]) or '0') ~= tonumber(ARGV[9]) then
  return {0, 0}
end

ensure_incarnation(KEYS[7], KEYS[6], ARGV[8])

local revision
if ARGV[4] ~= '' then
  revision = redis.call('INCR', KEYS[3])
  -- The counter alone may have been lost while the stream survived: never reuse an id.
  local last = redis.call('XREVRANGE', KEYS[4], '+', '-', 'COUNT', 1)
  if #last > 0 then
    local last_revision = tonumber(string.match(last[1][1], '^(%d+)-'))
    if last_revision >= revision then
      revision = last_revision + 1
      redis.call('SET', KEYS[3], revision)
    end
  end
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[5], string.format('%d-0', revision),
    'dependency', ARGV[3], 'change', ARGV[4])
else
  revision = tonumber(redis.call('HGET', KEYS[1], 'revision') or '0')
end

redis.call('HSET', KEYS[1], 'json', ARGV[2], 'state', ARGV[6], 'revision', string.format('%d', revision))
redis.call('ZADD', KEYS[2], 0, ARGV[3])
if ARGV[7] ~= '' then
  redis.call('ZADD', KEYS[5], ARGV[7], ARGV[3])
else
  redis.call('ZREM', KEYS[5], ARGV[3])
end
if batch then
  local fresh = redis.call('EXISTS', KEYS[8]) == 0
  redis.call('HSET', KEYS[8], ARGV[3], ARGV[10])
  if fresh then
    redis.call('PEXPIRE', KEYS[8], ARGV[11])
  end
end
return {1, revision}
