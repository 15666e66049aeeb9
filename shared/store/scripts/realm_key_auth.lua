-- realm_key_auth.lua: resolve a realm-scoped key by its SHA-256 and note
-- its use (lastUsedAt, written at most once per ARGV[1] ms).
--
-- KEYS[1] key record hash
-- ARGV[1] touch interval ms
--
-- Returns {0, key id, realm, role, stored hash} for a live key (the caller
-- compares the hash with its own in constant time); {1} no such key (revoked
-- or never issued).
local f = redis.call('HMGET', KEYS[1], 'id', 'realm', 'role', 'lastUsedAt', 'hash')
if not f[1] then
  return {1}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if (tonumber(f[4]) or 0) + tonumber(ARGV[1]) <= now then
  redis.call('HSET', KEYS[1], 'lastUsedAt', now)
end
return {0, f[1], f[2], f[3], f[5] or ''}
