-- offline.lua: the offline transition, for a graceful deregistration and for
-- an expired lease alike. Idempotent: a second call finds the runner offline.
--
-- KEYS[1]  runner hash            KEYS[2]  lease key
-- KEYS[3]  lease deadline zset    KEYS[4]  status:online zset
-- KEYS[5]  status:unreachable zset KEYS[6] status:offline zset
-- KEYS[7]  runner active-task set KEYS[8]  runner pending zset
-- KEYS[9]  runner cancel zset     KEYS[10] task deadline zset
-- KEYS[11] quarantine zset        KEYS[12] outbox stream
-- KEYS[13] stats hash
-- KEYS[14] offline-since zset (retention purge)
-- ARGV[1] runner id   ARGV[2] reason (lease_expired | deregistered)
-- ARGV[3] task key prefix   ARGV[4] lease epoch (0 = any)
-- ARGV[5] '1' to require that the lease is gone and its deadline passed
-- ARGV[6] error written on the failed tasks   ARGV[7] task retention ms (0 = keep)
-- ARGV[8] realm live key prefix (the runner leaves its realm's live set)
-- ARGV[9] traceparent of the transition's span ('' = none), carried by the event
--
-- Returns {0, epoch, lease deadline ms, now ms, failed task ids, heartbeat
--         traceparent} on transition, the last being the runner's stored
--         heartbeatTraceparent ('' = none);
--         {1} unknown runner; {2, epoch} already offline; {3, epoch} stale epoch;
--         {4, epoch} the lease is alive (a heartbeat won the race): nothing done.
local f = redis.call('HMGET', KEYS[1], 'status', 'epoch', 'leaseExpiresAt', 'name', 'version', 'realm', 'endpoint', 'labels', 'heartbeatTraceparent')
local status = f[1]
if not status then
  return {1}
end
local epoch = tonumber(f[2])
if status == 'offline' then
  return {2, epoch}
end
local argEpoch = tonumber(ARGV[4])
if argEpoch ~= 0 and argEpoch ~= epoch then
  return {3, epoch}
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id = ARGV[1]

if ARGV[5] == '1' then
  if redis.call('EXISTS', KEYS[2]) == 1 then
    return {4, epoch}
  end
  local deadline = redis.call('ZSCORE', KEYS[3], id)
  if deadline and tonumber(deadline) > now then
    return {4, epoch}
  end
end

local leaseExpiresAt = tonumber(f[3]) or now
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[3], id)
redis.call('ZREM', KEYS[4], id)
redis.call('ZREM', KEYS[5], id)
redis.call('ZADD', KEYS[6], 0, id)
redis.call('ZREM', KEYS[11], id)
redis.call('HSET', KEYS[1], 'status', 'offline', 'offlineReason', ARGV[2], 'offlineAt', now, 'tasksRunning', 0)
redis.call('ZADD', KEYS[14], now, id)
local realm = f[6]
if not realm or realm == '' then realm = 'default' end
redis.call('ZREM', ARGV[8] .. realm, id)

local failed = {}
local retention = tonumber(ARGV[7])
for _, tid in ipairs(redis.call('SMEMBERS', KEYS[7])) do
  local tkey = ARGV[3] .. tid
  local ts = redis.call('HGET', tkey, 'status')
  if ts == 'pending' or ts == 'running' then
    redis.call('HSET', tkey, 'status', 'failed', 'error', ARGV[6], 'finishedAt', now)
    if retention > 0 then redis.call('PEXPIRE', tkey, retention) end
    redis.call('HINCRBY', KEYS[13], 'tasks_completed:failed', 1)
    table.insert(failed, tid)
  end
  redis.call('ZREM', KEYS[10], tid)
end
table.sort(failed)
redis.call('DEL', KEYS[7], KEYS[8], KEYS[9])
redis.call('HINCRBY', KEYS[13], 'transitions:' .. ARGV[2], 1)

local runner = {id = id, name = f[4], version = f[5], realm = f[6], endpoint = f[7]}
if f[8] and f[8] ~= '' then runner.labels = cjson.decode(f[8]) end
redis.call('XADD', KEYS[12], '*', 'type', 'runner.offline', 'ts', now, 'traceparent', ARGV[9],
  'data', cjson.encode({runner = runner, reason = ARGV[2], failedTaskIds = failed,
    leaseEpoch = epoch, leaseExpiredAtMs = leaseExpiresAt}))

return {0, epoch, leaseExpiresAt, now, failed, f[9] or ''}
