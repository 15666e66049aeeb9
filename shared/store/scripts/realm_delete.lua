-- realm_delete.lua: delete a closed realm with its keys and its offline
-- runners' records, and write realm.deleted to the outbox, in one step.
--
-- KEYS[1] realm record hash   KEYS[2] realms zset
-- KEYS[3] realm runner index zset   KEYS[4] realm live zset
-- KEYS[5] realm keys hash   KEYS[6] outbox stream
-- KEYS[7] all-runners zset   KEYS[8] status:offline zset
-- KEYS[9] offline-since zset   KEYS[10] realm bucket hash
-- KEYS[11] realm recent-expiries zset   KEYS[12] realm quarantine zset
-- KEYS[13] realm quarantine state hash   KEYS[14] quarantined realms zset
-- ARGV[1] realm name   ARGV[2] who   ARGV[3] runner key prefix
-- ARGV[4] realm key record prefix
--
-- Returns {0, runners removed} deleted; {1} unknown realm;
--         {2, state} not closed; {3, live runner id} a runner of the realm
--         is online or unreachable; {4} the default realm (never deleted).
if ARGV[1] == 'default' then
  return {4}
end
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  return {1}
end
if state ~= 'closed' then
  return {2, state}
end
local ids = redis.call('ZRANGE', KEYS[3], 0, -1)
for _, id in ipairs(ids) do
  local st = redis.call('HGET', ARGV[3] .. id, 'status')
  if st == 'online' or st == 'unreachable' then
    return {3, id}
  end
end
local removed = 0
for _, id in ipairs(ids) do
  local rkey = ARGV[3] .. id
  if redis.call('HGET', rkey, 'realm') == ARGV[1] then
    redis.call('DEL', rkey, rkey .. ':tasks', rkey .. ':pending', rkey .. ':active', rkey .. ':cancel')
    redis.call('ZREM', KEYS[7], id)
    redis.call('ZREM', KEYS[8], id)
    redis.call('ZREM', KEYS[9], id)
    removed = removed + 1
  end
end
for _, h in ipairs(redis.call('HVALS', KEYS[5])) do
  redis.call('DEL', ARGV[4] .. h)
end
redis.call('DEL', KEYS[1], KEYS[3], KEYS[4], KEYS[5], KEYS[10], KEYS[11], KEYS[12], KEYS[13])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[14], ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('XADD', KEYS[6], '*', 'type', 'realm.deleted', 'ts', now,
  'data', cjson.encode({realm = {name = ARGV[1], state = 'deleted', previousState = state,
    stateChangedBy = ARGV[2], stateChangedAtMs = now}, runnersRemoved = removed}))
return {0, removed}
