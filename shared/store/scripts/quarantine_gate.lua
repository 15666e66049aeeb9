-- quarantine_gate.lua: decide, atomically and for every sweeper replica at
-- once, what happens to runners whose lease ran out: the normal offline
-- transition (returned for the caller to run offline.lua on), or quarantine
-- when the loss is correlated (more than ARGV[4] percent of the runners that
-- were online within one window, and at least ARGV[5], lost their lease).
-- Entering quarantine, and every expiry while it is active, moves runners to
-- `unreachable`: lease index entry removed, tasks kept, no offline event.
--
-- An id is decided once: "expire" is recorded in the recent-expiries zset and
-- a later call returns it as "expire" again (never quarantines it), so two
-- sweepers deciding at the same moment agree; a quarantined id leaves the
-- lease index and no later call sees it.
--
-- KEYS[1] lease deadline zset      KEYS[2] status:online zset
-- KEYS[3] status:unreachable zset  KEYS[4] quarantine zset
-- KEYS[5] quarantine state hash    KEYS[6] recent expiries zset
-- KEYS[7] outbox stream            KEYS[8] stats hash
-- ARGV[1] runner key prefix   ARGV[2] lease key prefix   ARGV[3] window ms (one lease TTL)
-- ARGV[4] percent (100 = never)   ARGV[5] minimum count   ARGV[6] scan limit
--
-- Candidates are index entries with a deadline strictly before now: Redis
-- expires a PX key only once its time is passed, so at the deadline's own
-- millisecond the lease key still exists. Scanning strictly before now keeps
-- runners that share a deadline in one decision.
--
-- Returns {entered (0/1), now ms, expire ids, quarantined ids, lost, base}
--   lost = expiries within the window including this call's (0 when not evaluated),
--   base = runners online within the window.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local candidates = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now, 'LIMIT', 0, tonumber(ARGV[6]))

local due = {}
for _, id in ipairs(candidates) do
  if redis.call('EXISTS', ARGV[2] .. id) == 0 then
    local st = redis.call('HGET', ARGV[1] .. id, 'status')
    if not st or st == 'offline' then
      -- a stale index entry (runner deleted or already offline): drop it so
      -- the tick does not find it forever
      redis.call('ZREM', KEYS[1], id)
    else
      due[#due + 1] = id
    end
  end
end
if #due == 0 then
  return {0, now, {}, {}, 0, 0}
end

local active = redis.call('HGET', KEYS[5], 'active') == '1'
local entered = 0
local expire, quarantine = {}, {}
local lost, base = 0, 0
if active then
  quarantine = due
else
  redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now - tonumber(ARGV[3]))
  local fresh = {}
  for _, id in ipairs(due) do
    if redis.call('ZSCORE', KEYS[6], id) then
      expire[#expire + 1] = id
    else
      fresh[#fresh + 1] = id
    end
  end
  local recent = redis.call('ZCARD', KEYS[6])
  lost = recent + #fresh
  -- runners online now (the fresh ones still are) plus those that expired
  -- within the window: the fleet as it stood one lease TTL ago
  base = redis.call('ZCARD', KEYS[2]) + recent
  if #fresh > 0 and lost >= tonumber(ARGV[5]) and lost * 100 > tonumber(ARGV[4]) * base then
    entered = 1
    quarantine = fresh
    redis.call('DEL', KEYS[5])
    redis.call('HSET', KEYS[5], 'active', 1, 'since', now, 'count', 0,
      'reason', 'mass expiry: ' .. lost .. ' of ' .. base .. ' runners lost their lease within ' .. ARGV[3] .. ' ms')
    redis.call('HINCRBY', KEYS[8], 'quarantine_entries', 1)
  else
    for _, id in ipairs(fresh) do
      redis.call('ZADD', KEYS[6], now, id)
      expire[#expire + 1] = id
    end
  end
end

for _, id in ipairs(quarantine) do
  local rkey = ARGV[1] .. id
  local f = redis.call('HMGET', rkey, 'epoch', 'leaseExpiresAt', 'name', 'version', 'realm', 'endpoint')
  redis.call('HSET', rkey, 'status', 'unreachable', 'unreachableAt', now)
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZADD', KEYS[3], 0, id)
  redis.call('ZADD', KEYS[4], now, id)
  redis.call('XADD', KEYS[7], '*', 'type', 'runner.unreachable', 'ts', now,
    'data', cjson.encode({runner = {id = id, name = f[3], version = f[4], realm = f[5], endpoint = f[6]},
      reason = 'mass_expiry', leaseEpoch = tonumber(f[1]) or 0, leaseExpiredAtMs = tonumber(f[2]) or 0}))
end
if #quarantine > 0 then
  redis.call('HINCRBY', KEYS[5], 'count', #quarantine)
end

return {entered, now, expire, quarantine, lost, base}
