-- runner_purge.lua: delete an offline runner with its indexes, once it has
-- been offline for the retention (0 = at once: DELETE /runners/:id). Its
-- tasks stay: they expire by their own retention (TASK_RETENTION_MS) and stay
-- listed in the fleet task index until then. Re-checks everything itself: a
-- runner that re-registered since it was found is online and survives.
--
-- KEYS[1]  runner hash            KEYS[2]  all-runners zset
-- KEYS[3]  status:online zset     KEYS[4]  status:unreachable zset
-- KEYS[5]  status:offline zset    KEYS[6]  offline-since zset
-- KEYS[7]  runner tasks zset      KEYS[8]  runner pending zset
-- KEYS[9]  runner active set      KEYS[10] runner cancel zset
-- KEYS[11] lease key              KEYS[12] lease deadline zset
-- KEYS[13] quarantine zset        KEYS[14] realms zset (unused: realms outlive their runners)
-- ARGV[1] runner id   ARGV[2] retention ms (0 = no wait)   ARGV[3] realm index key prefix
--
-- Returns {0, realm} deleted; {1} unknown runner (its stale offline-since
--         entry is dropped); {2, status} not offline: nothing done;
--         {3, offlineAt ms} offline for less than the retention: nothing done.
local id = ARGV[1]
local f = redis.call('HMGET', KEYS[1], 'status', 'offlineAt', 'realm')
local status = f[1]
if not status then
  redis.call('ZREM', KEYS[6], id)
  return {1}
end
if status ~= 'offline' then
  redis.call('ZREM', KEYS[6], id)
  return {2, status}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local offlineAt = tonumber(f[2]) or 0
local retention = tonumber(ARGV[2])
if retention > 0 and offlineAt + retention > now then
  -- keep the index entry true to the record (it may have gone offline again)
  redis.call('ZADD', KEYS[6], offlineAt, id)
  return {3, offlineAt}
end

redis.call('DEL', KEYS[1], KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[11])
for i = 2, 6 do redis.call('ZREM', KEYS[i], id) end
redis.call('ZREM', KEYS[12], id)
redis.call('ZREM', KEYS[13], id)
local realm = f[3] or ''
if realm ~= '' then
  redis.call('ZREM', ARGV[3] .. realm, id)
end
return {0, realm}
