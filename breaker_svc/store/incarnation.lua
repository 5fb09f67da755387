-- Prepended to the scripts that create or name an epoch (commit, snapshot, rotate): not a script
-- on its own.
--
-- The epoch must change whenever the log may have gone back, and a Redis restart can take it
-- back: restarted from an older RDB save (or an AOF missing its last writes), the epoch key
-- survives but the revision counter and the stream are those of the save, so new events would
-- reuse revisions subscribers already applied under the same epoch. So the epoch is tied to the
-- Redis process it was made under: <prefix>run_id holds that process's `run_id` (random per
-- start of redis-server), and whenever the live run_id differs from the stored one (a restart, a
-- failover to a replica, a flush that took the key, or a store that predates the key) the epoch
-- is replaced, before anything is read or appended. The check runs inside each script that
-- writes or names an epoch, so it is atomic with them: no event is ever appended under an epoch
-- made by an earlier Redis process, and racing replicas rotate once (the first sets run_id).
-- A restored save holds the old run_id, so the stored key alone proves nothing: only the live
-- run_id, read here with INFO, tells. A Redis that hides run_id leaves only the SET NX.
-- Returns true when it rotated the epoch.
local function ensure_incarnation(run_id_key, epoch_key, fresh_epoch)
  local live = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
  if live ~= nil and redis.call('GET', run_id_key) ~= live then
    redis.call('SET', run_id_key, live)
    redis.call('SET', epoch_key, fresh_epoch)
    return true
  end
  redis.call('SET', epoch_key, fresh_epoch, 'NX')
  return false
end

