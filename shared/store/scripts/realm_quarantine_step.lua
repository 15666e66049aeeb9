-- realm_quarantine_step.lua: advance one realm's quarantine (entered by
-- quarantine_gate.lua's per-realm rule), once, whichever sweeper replica
-- gets here first. It drops from the realm's quarantine zset the runners
-- that are no longer unreachable (heartbeat.lua brought them back online,
-- or they went offline), ends the active quarantine like quarantine_exit.lua
-- (every runner back, an operator's confirmation, or the hold passed), and
-- removes the realm from the quarantined-realms zset once it is over and its
-- zset is empty. The runners left after the end are taken offline by the
-- caller (offline.lua through ExpireLeases), then dropped with ZREM.
--
-- KEYS[1] realm quarantine state hash   KEYS[2] realm quarantine zset
-- KEYS[3] quarantined realms zset       KEYS[4] stats hash
-- ARGV[1] hold ms   ARGV[2] '1' when an operator confirms the release now
-- ARGV[3] runner key prefix   ARGV[4] realm name   ARGV[5] scan limit
--
-- Returns {ended (0/1), active (0/1), runners still quarantined, reason, since ms, now ms}
--   ended = 1 when this call ended the quarantine, by reason (recovered,
--   operator, hold_expired); reason '' otherwise.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, tonumber(ARGV[5]) - 1)) do
  if redis.call('HGET', ARGV[3] .. id, 'status') ~= 'unreachable' then
    redis.call('ZREM', KEYS[2], id)
  end
end
local left = redis.call('ZCARD', KEYS[2])
local st = redis.call('HMGET', KEYS[1], 'active', 'since')
local since = tonumber(st[2]) or 0
if st[1] ~= '1' then
  if left == 0 then
    redis.call('ZREM', KEYS[3], ARGV[4])
  end
  return {0, 0, left, '', since, now}
end
local reason
if left == 0 then
  reason = 'recovered'
elseif ARGV[2] == '1' then
  reason = 'operator'
elseif now >= since + tonumber(ARGV[1]) then
  reason = 'hold_expired'
else
  return {0, 1, left, '', since, now}
end
redis.call('HSET', KEYS[1], 'active', 0, 'exitedAt', now, 'exitReason', reason)
redis.call('HINCRBY', KEYS[4], 'realm_quarantine_exits:' .. reason, 1)
if left == 0 then
  redis.call('ZREM', KEYS[3], ARGV[4])
end
return {1, 0, left, reason, since, now}
