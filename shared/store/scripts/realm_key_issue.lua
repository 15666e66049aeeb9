-- realm_key_issue.lua: store a new realm-scoped key (its SHA-256 only).
--
-- KEYS[1] realm record hash   KEYS[2] realm keys hash   KEYS[3] key record hash
-- ARGV[1] realm   ARGV[2] key id   ARGV[3] key hash   ARGV[4] name   ARGV[5] role
--
-- Returns {0, createdAt ms} issued; {1} unknown realm.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {1}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[3], 'id', ARGV[2], 'realm', ARGV[1], 'name', ARGV[4], 'role', ARGV[5], 'hash', ARGV[3], 'createdAt', now)
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return {0, now}
