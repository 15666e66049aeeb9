-- quarantine_gate.lua: decide, atomically and for every sweeper replica at
-- once, what happens to runners whose lease ran out: the normal offline
-- transition (returned for the caller to run offline.lua on), or quarantine
-- when the loss is correlated. Two rules, either one enters quarantine:
--
--   mass_expiry   more than ARGV[4] percent of the runners that were online
--                 within one window (one lease TTL), and at least ARGV[5],
--                 lost their lease within it (a loss all at once);
--   fleet_silent  more than ARGV[4] percent of the lease holders, and at least
--                 ARGV[5], have been silent for more than ARGV[7] ms (a loss
--                 that is still running out: an API outage or a partition).
--
-- The second rule looks ahead with the deadline index: every renewal sets
-- deadline = now + TTL, so a deadline below now + TTL - ARGV[7] means no
-- renewal for ARGV[7] ms (one ZCOUNT). When heartbeats stop fleet-wide, every
-- runner is silent long before the first lease runs out, so the first due
-- lease already finds the fleet silent and nobody is failed one by one.
-- Both rules are only evaluated when some lease is due.
--
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
-- KEYS[9] outages:pending zset     KEYS[10] quarantined realms zset
-- ARGV[1] runner key prefix   ARGV[2] lease key prefix   ARGV[3] window ms (one lease TTL)
-- ARGV[4] percent (100 = never)   ARGV[5] minimum count   ARGV[6] scan limit
-- ARGV[7] silent-after ms (0 = the fleet_silent rule is off)
-- ARGV[8] realm record prefix   ARGV[9] realm live prefix
-- ARGV[10] realm recent-expiries prefix   ARGV[11] realm quarantine zset prefix
-- ARGV[12] realm quarantine state prefix
--
-- Per realm: when the fleet-wide rules do not enter quarantine, the fresh
-- expiries are grouped by the runner's realm and the mass_expiry rule is
-- applied to each realm alone: lost = the realm's expiries within the
-- window (ARGV[10] .. realm) plus its fresh ones, base = its live runners
-- (ARGV[9] .. realm, the fresh ones still in it) plus those expiries, and
-- the percent is the realm's p:massExpiryPercent, else ARGV[4]. A realm
-- entering quarantine gets its own state hash (ARGV[12] .. realm), joins
-- KEYS[10] (score: since) and its fresh runners go to its own quarantine
-- zset (ARGV[11] .. realm), not KEYS[4]; while its state is active, every
-- expiry of that realm is quarantined the same way, and the other realms'
-- runners keep expiring. realm_quarantine_step.lua ends it.
--
-- Candidates are index entries with a deadline strictly before now: Redis
-- expires a PX key only once its time is passed, so at the deadline's own
-- millisecond the lease key still exists. Scanning strictly before now keeps
-- runners that share a deadline in one decision.
--
-- While an outage window waits for its failover grace (KEYS[9] not empty),
-- nothing is decided: the leases it covers must be re-armed first
-- (outage_grace.lua), whoever recorded the window.
--
-- Returns {entered (0/1), now ms, expire ids, quarantined ids, lost, base,
--          next ms, rule, silent, population, grace due (0/1),
--          realms entered, realm-quarantined ids}
--   lost = expiries within the window including this call's (0 when not evaluated),
--   base = runners online within the window,
--   next = ms from now until the earliest lease not yet due becomes due
--          (0: more are due than this call took; -1: the index is empty),
--   rule = the rule that entered quarantine ('' otherwise),
--   silent, population = the fleet_silent figures (0 when not evaluated).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

if redis.call('EXISTS', KEYS[9]) == 1 then
  return {0, now, {}, {}, 0, 0, 0, '', 0, 0, 1, {}, {}}
end

local limit = tonumber(ARGV[6])
local candidates = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now, 'LIMIT', 0, limit)

-- when the sweeper should look again: a lease whose deadline is d becomes a
-- candidate once now > d. Measured here, with Redis' clock, so that replicas
-- on hosts with skewed clocks wake at the same moment.
local nextDue = -1
if #candidates >= limit then
  nextDue = 0
else
  local head = redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if #head == 2 then
    nextDue = tonumber(head[2]) - now + 1
  end
end

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
  return {0, now, {}, {}, 0, 0, nextDue, '', 0, 0, 0, {}, {}}
end

local function realmOf(id)
  local r = redis.call('HGET', ARGV[1] .. id, 'realm')
  if not r or r == '' then r = 'default' end
  return r
end

local state = redis.call('HMGET', KEYS[5], 'active', 'rule')
local active = state[1] == '1'
local rule = state[2] or 'mass_expiry'
local entered = 0
local expire, quarantine = {}, {}
local lost, base, silent, population = 0, 0, 0, 0
-- realm quarantine: realm -> ids, and the realms this call put in quarantine
local realmQ, realmOrder, realmsEntered, realmIDs = {}, {}, {}, {}
local function toRealm(r, id)
  if not realmQ[r] then
    realmQ[r] = {}
    realmOrder[#realmOrder + 1] = r
  end
  local q = realmQ[r]
  q[#q + 1] = id
  realmIDs[#realmIDs + 1] = id
end
if active then
  quarantine = due
else
  local window = tonumber(ARGV[3])
  local pct, least = tonumber(ARGV[4]), tonumber(ARGV[5])
  redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now - window)
  local fresh = {}
  local realmActive = {}
  for _, id in ipairs(due) do
    if redis.call('ZSCORE', KEYS[6], id) then
      expire[#expire + 1] = id
    else
      local r = realmOf(id)
      if realmActive[r] == nil then
        realmActive[r] = redis.call('HGET', ARGV[12] .. r, 'active') == '1'
      end
      if realmActive[r] then
        toRealm(r, id) -- its realm is quarantined: not a fleet-wide figure
      else
        fresh[#fresh + 1] = id
      end
    end
  end
  local recent = redis.call('ZCARD', KEYS[6])
  lost = recent + #fresh
  -- runners online now (the fresh ones still are) plus those that expired
  -- within the window: the fleet as it stood one lease TTL ago
  base = redis.call('ZCARD', KEYS[2]) + recent
  local reason
  if #fresh > 0 and lost >= least and lost * 100 > pct * base then
    rule = 'mass_expiry'
    reason = lost .. ' of ' .. base .. ' runners lost their lease within ' .. window .. ' ms'
  end
  local silentAfter = tonumber(ARGV[7])
  if not reason and #fresh > 0 and silentAfter > 0 then
    -- lease holders not renewed for silentAfter ms (the due ones included:
    -- their deadline is below now), plus the runners that expired within
    -- the window and already left the index, over the same population
    local below = now + window - silentAfter
    silent = redis.call('ZCOUNT', KEYS[1], '-inf', '(' .. below) + recent
    population = redis.call('ZCARD', KEYS[1]) + recent
    if silent >= least and silent * 100 > pct * population then
      rule = 'fleet_silent'
      reason = silent .. ' of ' .. population .. ' runners silent for more than ' .. silentAfter .. ' ms'
    end
  end
  if reason then
    entered = 1
    quarantine = fresh
    redis.call('DEL', KEYS[5])
    redis.call('HSET', KEYS[5], 'active', 1, 'since', now, 'count', 0, 'rule', rule,
      'reason', rule .. ': ' .. reason)
    redis.call('HINCRBY', KEYS[8], 'quarantine_entries', 1)
  else
    -- the mass_expiry rule, realm by realm
    local byRealm, order = {}, {}
    for _, id in ipairs(fresh) do
      local r = realmOf(id)
      if not byRealm[r] then
        byRealm[r] = {}
        order[#order + 1] = r
      end
      local g = byRealm[r]
      g[#g + 1] = id
    end
    for _, r in ipairs(order) do
      local ids = byRealm[r]
      local rexp = ARGV[10] .. r
      redis.call('ZREMRANGEBYSCORE', rexp, '-inf', now - window)
      local rrecent = redis.call('ZCARD', rexp)
      local rlost = rrecent + #ids
      local rbase = redis.call('ZCARD', ARGV[9] .. r) + rrecent
      local rpct = tonumber(redis.call('HGET', ARGV[8] .. r, 'p:massExpiryPercent')) or pct
      if rlost >= least and rlost * 100 > rpct * rbase then
        local skey = ARGV[12] .. r
        redis.call('DEL', skey)
        redis.call('HSET', skey, 'active', 1, 'since', now, 'count', 0, 'rule', 'mass_expiry',
          'reason', 'mass_expiry: ' .. rlost .. ' of ' .. rbase .. ' runners of realm ' .. r ..
            ' lost their lease within ' .. window .. ' ms')
        redis.call('ZADD', KEYS[10], now, r)
        redis.call('HINCRBY', KEYS[8], 'realm_quarantine_entries', 1)
        realmsEntered[#realmsEntered + 1] = r
        for _, id in ipairs(ids) do toRealm(r, id) end
      else
        for _, id in ipairs(ids) do
          redis.call('ZADD', KEYS[6], now, id)
          redis.call('ZADD', rexp, now, id)
          redis.call('PEXPIRE', rexp, window)
          expire[#expire + 1] = id
        end
      end
    end
  end
end

local function unreachable(id, zkey, why)
  local rkey = ARGV[1] .. id
  local f = redis.call('HMGET', rkey, 'epoch', 'leaseExpiresAt', 'name', 'version', 'realm', 'endpoint')
  redis.call('HSET', rkey, 'status', 'unreachable', 'unreachableAt', now)
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZADD', KEYS[3], 0, id)
  redis.call('ZADD', zkey, now, id)
  redis.call('XADD', KEYS[7], '*', 'type', 'runner.unreachable', 'ts', now,
    'data', cjson.encode({runner = {id = id, name = f[3], version = f[4], realm = f[5], endpoint = f[6]},
      reason = why, leaseEpoch = tonumber(f[1]) or 0, leaseExpiredAtMs = tonumber(f[2]) or 0}))
end
for _, id in ipairs(quarantine) do
  unreachable(id, KEYS[4], rule)
end
if #quarantine > 0 then
  redis.call('HINCRBY', KEYS[5], 'count', #quarantine)
end
for _, r in ipairs(realmOrder) do
  for _, id in ipairs(realmQ[r]) do
    unreachable(id, ARGV[11] .. r, 'mass_expiry')
  end
  redis.call('HINCRBY', ARGV[12] .. r, 'count', #realmQ[r])
end

return {entered, now, expire, quarantine, lost, base, nextDue, entered == 1 and rule or '', silent, population, 0,
  realmsEntered, realmIDs}
