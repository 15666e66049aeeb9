-- outage_grace.lua: the failover grace. For every outage window not granted
-- yet, re-arm every lease that fell due during the outage or falls due
-- within one lease TTL after it (deadline in [from, to + TTL]) to now +
-- grace: lease key SET again with PX, deadline index and leaseExpiresAt
-- moved. The runners could not renew while the control plane was away; a
-- runner that really died expires one grace later, once, as usual.
--
-- Untouched: runners not online or unreachable (stale index entries, the
-- gate drops them); leases that already end after now + grace (never
-- shortened); leases renewed since the outage began (lastHeartbeat >= from)
-- that still hold more than ARGV[5] ms: another API replica reached Redis
-- for them, they need nothing.
--
-- Idempotent per window: a granted window leaves the pending zset and is
-- recorded in the grants hash (with a count, should the same window be
-- recorded and granted again: that extends a lease twice, harmless).
--
-- KEYS[1] outages:pending zset   KEYS[2] outages:granted hash
-- KEYS[3] lease deadline zset    KEYS[4] stats hash
-- ARGV[1] runner key prefix   ARGV[2] lease key prefix   ARGV[3] lease TTL ms
-- ARGV[4] grace ms   ARGV[5] keep ms (a lease renewed during the window with
-- more than this left is untouched: one heartbeat interval)
--
-- Returns {windows granted, leases re-armed, now ms, granted window ids}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local windows = redis.call('ZRANGE', KEYS[1], 0, -1)
if #windows == 0 then
  return {0, 0, now, {}}
end
local ttl, grace, keep = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local upto = now + grace
local total = 0
for _, w in ipairs(windows) do
  local from, to = string.match(w, ':(%d+):(%d+)$')
  from, to = tonumber(from), tonumber(to)
  local n = 0
  if from and to then
    local due = redis.call('ZRANGEBYSCORE', KEYS[3], from, to + ttl, 'WITHSCORES')
    for i = 1, #due, 2 do
      local id, deadline = due[i], tonumber(due[i + 1])
      if deadline < upto then
        local rkey = ARGV[1] .. id
        local f = redis.call('HMGET', rkey, 'status', 'epoch', 'lastHeartbeat')
        local renewed = (tonumber(f[3]) or 0) >= from and deadline > now + keep
        if (f[1] == 'online' or f[1] == 'unreachable') and not renewed then
          redis.call('SET', ARGV[2] .. id, f[2], 'PX', grace)
          redis.call('ZADD', KEYS[3], upto, id)
          redis.call('HSET', rkey, 'leaseExpiresAt', upto)
          n = n + 1
        end
      end
    end
  end
  local prev = redis.call('HGET', KEYS[2], w)
  local times = 1
  if prev then times = (tonumber(string.match(prev, ':(%d+)$')) or 0) + 1 end
  redis.call('HSET', KEYS[2], w, now .. ':' .. n .. ':' .. times)
  redis.call('ZREM', KEYS[1], w)
  redis.call('HINCRBY', KEYS[4], 'outage_grants', 1)
  redis.call('HINCRBY', KEYS[4], 'outage_leases_rearmed', n)
  total = total + n
end
return {#windows, total, now, windows}
