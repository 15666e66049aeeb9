-- task_timeout.lua: fail a task that ran past its timeout plus a grace, once.
-- Idempotent: a task that finished, or was already timed out by another
-- sweeper, is left alone.
--
-- KEYS[1] task hash             KEYS[2] runner pending zset
-- KEYS[3] runner active set     KEYS[4] runner cancel zset
-- KEYS[5] task deadline zset    KEYS[6] stats hash
-- ARGV[1] task id   ARGV[2] runner id the per-runner keys were built for
-- ARGV[3] grace ms   ARGV[4] retention ms for the failed task (0 = keep)
-- ARGV[5] error written on the task
--
-- Returns {0, previous status, now ms, deadline ms} when the task was failed;
--         {1} task gone (its index entry is dropped); {2, runnerId} the task
--         belongs to another runner than ARGV[2] (keys built wrong: nothing done);
--         {3, status} task already finished (index entry dropped);
--         {4} not due (no deadline, or deadline + grace still ahead).
local tid = ARGV[1]
local f = redis.call('HMGET', KEYS[1], 'status', 'runnerId')
if not f[1] then
  redis.call('ZREM', KEYS[5], tid)
  return {1}
end
if f[2] ~= ARGV[2] then
  return {2, f[2] or ''}
end
local status = f[1]
if status ~= 'pending' and status ~= 'running' then
  redis.call('ZREM', KEYS[5], tid)
  return {3, status}
end
local dl = redis.call('ZSCORE', KEYS[5], tid)
if not dl then
  return {4}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if tonumber(dl) + tonumber(ARGV[3]) > now then
  return {4}
end

redis.call('HSET', KEYS[1], 'status', 'failed', 'error', ARGV[5], 'finishedAt', now)
redis.call('ZREM', KEYS[2], tid)
redis.call('SREM', KEYS[3], tid)
redis.call('ZREM', KEYS[5], tid)
if status == 'running' then
  redis.call('ZADD', KEYS[4], now, tid)
end
redis.call('HINCRBY', KEYS[6], 'tasks_completed:failed', 1)
local retention = tonumber(ARGV[4])
if retention > 0 then redis.call('PEXPIRE', KEYS[1], retention) end
return {0, status, now, tonumber(dl)}
