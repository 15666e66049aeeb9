-- task_update.lua: move a task along its state machine.
--   pending -> running | failed | cancelled;  running -> succeeded | failed | cancelled
-- Setting the status a task already has is an idempotent no-op (a retried request).
--
-- KEYS[1] task hash             KEYS[2] runner hash
-- KEYS[3] runner pending zset   KEYS[4] runner active set
-- KEYS[5] runner cancel zset    KEYS[6] task deadline zset
-- KEYS[7] stats hash
-- ARGV[1] task id   ARGV[2] runner id the caller names   ARGV[3] new status
-- ARGV[4] result JSON ('' = none)   ARGV[5] error ('' = none)
-- ARGV[6] lease epoch (0 = not checked)   ARGV[7] actor (runner | operator)
-- ARGV[8] retention ms for a finished task (0 = keep)
-- ARGV[9] task events pub/sub channel ('' = none): a change publishes the runner id
--
-- Returns {0, HGETALL of the task} on success (or no-op);
--         {1} unknown task (or a task of another runner); {3, epoch} stale epoch;
--         {4, current status} task already terminal; {5, current status} illegal transition.
local cur = redis.call('HMGET', KEYS[1], 'status', 'runnerId')
if not cur[1] or cur[2] ~= ARGV[2] then
  return {1}
end
local from, to = cur[1], ARGV[3]
local tid = ARGV[1]

if ARGV[7] == 'runner' then
  local epoch = tonumber(redis.call('HGET', KEYS[2], 'epoch') or '0')
  local argEpoch = tonumber(ARGV[6])
  if argEpoch ~= 0 and argEpoch ~= epoch then
    return {3, epoch}
  end
end

if from == to then
  return {0, redis.call('HGETALL', KEYS[1])}
end
local terminal = {succeeded = true, failed = true, cancelled = true}
if terminal[from] then
  if ARGV[7] == 'runner' then
    -- the runner has heard about the cancellation: stop repeating it
    redis.call('ZREM', KEYS[5], tid)
  end
  return {4, from}
end
local legal = (from == 'pending' and (to == 'running' or to == 'failed' or to == 'cancelled'))
  or (from == 'running' and terminal[to])
if not legal then
  return {5, from}
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

redis.call('ZREM', KEYS[3], tid)
if to == 'running' then
  redis.call('HSET', KEYS[1], 'status', 'running', 'startedAt', now,
    'epoch', redis.call('HGET', KEYS[2], 'epoch') or 0)
  if ARGV[9] ~= '' then redis.call('PUBLISH', ARGV[9], ARGV[2]) end
  return {0, redis.call('HGETALL', KEYS[1])}
end

redis.call('HSET', KEYS[1], 'status', to, 'finishedAt', now)
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'result', ARGV[4]) end
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'error', ARGV[5]) end
redis.call('SREM', KEYS[4], tid)
redis.call('ZREM', KEYS[6], tid)
if from == 'running' and to == 'cancelled' and ARGV[7] == 'operator' then
  redis.call('ZADD', KEYS[5], now, tid)
else
  redis.call('ZREM', KEYS[5], tid)
end
redis.call('HINCRBY', KEYS[7], 'tasks_completed:' .. to, 1)
local retention = tonumber(ARGV[8])
if retention > 0 then redis.call('PEXPIRE', KEYS[1], retention) end
if ARGV[9] ~= '' then redis.call('PUBLISH', ARGV[9], ARGV[2]) end
return {0, redis.call('HGETALL', KEYS[1])}
