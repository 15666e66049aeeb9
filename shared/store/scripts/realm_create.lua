-- realm_create.lua: create a realm (or make sure the default realm exists).
--
-- KEYS[1] realm record hash   KEYS[2] realms zset
-- ARGV[1] name   ARGV[2] description   ARGV[3] policies JSON (no secret)
-- ARGV[4] webhook secret ('' = none)   ARGV[5] who creates it
-- ARGV[6] flat policy fields as JSON object {"p:leaseTtlMs": "...", ...}
-- ARGV[7] '1' to succeed quietly when the realm exists (ensure), else '0'
--
-- Returns {0, createdAt ms} created; {1} the realm exists already (with
--         ARGV[7] = '1': {0, createdAt ms} of the existing one).
local existing = redis.call('HGET', KEYS[1], 'createdAt')
if existing then
  if ARGV[7] == '1' then
    return {0, tonumber(existing)}
  end
  return {1}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], 'name', ARGV[1], 'description', ARGV[2], 'state', 'active',
  'policies', ARGV[3], 'createdAt', now, 'stateChangedAt', now, 'stateChangedBy', ARGV[5])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'webhookSecret', ARGV[4]) end
for k, v in pairs(cjson.decode(ARGV[6])) do
  redis.call('HSET', KEYS[1], k, v)
end
redis.call('ZADD', KEYS[2], 0, ARGV[1])
return {0, now}
