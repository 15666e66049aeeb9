-- realm_key_revoke.lua: revoke a realm-scoped key. From the next request on
-- the key finds no record (every replica looks it up per request).
--
-- KEYS[1] realm keys hash
-- ARGV[1] key id   ARGV[2] key record prefix
--
-- Returns {0} revoked; {1} no such key in this realm.
local h = redis.call('HGET', KEYS[1], ARGV[1])
if not h then
  return {1}
end
redis.call('DEL', ARGV[2] .. h)
redis.call('HDEL', KEYS[1], ARGV[1])
return {0}
