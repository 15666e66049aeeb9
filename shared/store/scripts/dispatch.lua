-- dispatch.lua: create a task for a runner, at most once per Idempotency-Key.
--
-- KEYS[1] runner hash          KEYS[2] task hash
-- KEYS[3] runner tasks zset    KEYS[4] runner pending zset
-- KEYS[5] runner active set    KEYS[6] task deadline zset
-- KEYS[7] idempotency key      KEYS[8] stats hash
-- KEYS[9] all-tasks zset (score createdAt ms)
-- ARGV[1] task id   ARGV[2] runner id   ARGV[3] type   ARGV[4] payload JSON
-- ARGV[5] timeout ms (0 = none)   ARGV[6] '1' when an idempotency key was given
-- ARGV[7] idempotency TTL ms   ARGV[8] dispatch pub/sub channel
-- ARGV[9] request fingerprint (the idempotency key stores "<task id> <fingerprint>")
-- ARGV[10] realm record key prefix
--
-- Returns {0, task id, createdAt ms} for a new task;
--         {5, existing task id} when the idempotency key already made one;
--         {6, existing task id} when it made one from a different request;
--         {1} unknown runner; {2, status} runner offline or unreachable;
--         {3} runner draining (its last heartbeat reported activity 'draining':
--             it finishes its tasks and takes no more; a registration clears it);
--         {7, state} the runner's realm is draining or closed.
-- The task records its runner's realm (field realm), for GET /tasks?realm=.
if ARGV[6] == '1' then
  local existing = redis.call('GET', KEYS[7])
  if existing then
    local sep = string.find(existing, ' ', 1, true)
    local tid, fp = existing, ''
    if sep then
      tid, fp = string.sub(existing, 1, sep - 1), string.sub(existing, sep + 1)
    end
    if fp ~= ARGV[9] then
      return {6, tid}
    end
    return {5, tid}
  end
end
local st = redis.call('HMGET', KEYS[1], 'status', 'activity', 'realm')
local status = st[1]
if not status then
  return {1}
end
if status == 'offline' or status == 'unreachable' then
  return {2, status}
end
local realm = st[3]
if not realm or realm == '' then realm = 'default' end
local realmState = redis.call('HGET', ARGV[10] .. realm, 'state')
if realmState == 'draining' or realmState == 'closed' then
  return {7, realmState}
end
if st[2] == 'draining' then
  return {3}
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tid = ARGV[1]
local timeout = tonumber(ARGV[5])

redis.call('HSET', KEYS[2], 'id', tid, 'runnerId', ARGV[2], 'type', ARGV[3],
  'payload', ARGV[4], 'status', 'pending', 'timeoutMs', timeout, 'createdAt', now, 'realm', realm)
redis.call('ZADD', KEYS[3], now, tid)
redis.call('ZADD', KEYS[9], now, tid)
redis.call('ZADD', KEYS[4], now, tid)
redis.call('SADD', KEYS[5], tid)
if timeout > 0 then
  redis.call('ZADD', KEYS[6], now + timeout, tid)
end
if ARGV[6] == '1' then
  redis.call('SET', KEYS[7], tid .. ' ' .. ARGV[9], 'PX', ARGV[7])
end
redis.call('HINCRBY', KEYS[8], 'tasks_dispatched', 1)
redis.call('PUBLISH', ARGV[8], ARGV[2])
return {0, tid, now}
