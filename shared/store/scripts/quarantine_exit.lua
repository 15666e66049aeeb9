-- quarantine_exit.lua: leave the correlated-loss state, once, whichever
-- sweeper replica gets here first. The quarantined runners that are left are
-- then taken offline by the caller (offline.lua through ReleaseQuarantined);
-- runners that heartbeated meanwhile already left the quarantine zset.
--
-- KEYS[1] quarantine state hash   KEYS[2] quarantine zset   KEYS[3] stats hash
-- ARGV[1] hold ms   ARGV[2] '1' when an operator confirms the release now
--
-- Returns {0} when nothing changed (not active, or still holding);
--         {1, reason, runners still quarantined, since ms, now ms} on exit, where
--         reason is recovered (every runner came back), operator or hold_expired.
local st = redis.call('HMGET', KEYS[1], 'active', 'since')
if st[1] ~= '1' then
  return {0}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local since = tonumber(st[2]) or 0
local left = redis.call('ZCARD', KEYS[2])
local reason
if left == 0 then
  reason = 'recovered'
elseif ARGV[2] == '1' then
  reason = 'operator'
elseif now >= since + tonumber(ARGV[1]) then
  reason = 'hold_expired'
else
  return {0}
end
redis.call('HSET', KEYS[1], 'active', 0, 'exitedAt', now, 'exitReason', reason)
redis.call('HINCRBY', KEYS[3], 'quarantine_exits:' .. reason, 1)
return {1, reason, left, since, now}
