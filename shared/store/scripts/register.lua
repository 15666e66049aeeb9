-- register.lua: register a runner, or bring a known runner back under a new epoch.
--
-- KEYS[1]  runner hash            KEYS[2]  lease key
-- KEYS[3]  lease deadline zset    KEYS[4]  all-runners zset
-- KEYS[5]  status:online zset     KEYS[6]  status:unreachable zset
-- KEYS[7]  status:offline zset    KEYS[8]  realms zset
-- KEYS[9]  outbox stream          KEYS[10] runner active-task set
-- KEYS[11] runner cancel zset     KEYS[12] quarantine zset
-- KEYS[13] task deadline zset     KEYS[14] stats hash
-- KEYS[15] offline-since zset (retention purge)
-- ARGV[1] runner id   ARGV[2] name   ARGV[3] version   ARGV[4] realm
-- ARGV[5] endpoint    ARGV[6] labels (JSON, '' for none)   ARGV[7] capacity
-- ARGV[8] token hash  ARGV[9] lease TTL ms   ARGV[10] max runners (0 = no limit)
-- ARGV[11] realm index key prefix   ARGV[12] task key prefix
-- ARGV[13] '1' when the caller's credential acts as any runner (an API key
--          RUNNER_AUTH allows, or auth off), else '0'
-- ARGV[14] hash of the runner token the caller presented ('' = none)
-- KEYS[16] realm record hash (of ARGV[4])   KEYS[17] realm live zset
-- KEYS[18] realm registration bucket hash
-- ARGV[15] realm live key prefix (to leave a previous realm's live set)
-- ARGV[16] '1' when the caller's key is scoped to the realm ARGV[4]: a
--          runner of another realm is not its to register
-- ARGV[17] '1' when an unknown realm may be created on the fly (a global
--          key naming a realm; the default realm is always created)
-- ARGV[18] REGISTER_RATE per second (0 = no limit)   ARGV[19] REGISTER_BURST
-- ARGV[20] HEARTBEAT_INTERVAL_MS (the global one, for the reply)
-- ARGV[21] traceparent of the request's server span ('' = none): stored as
--          heartbeatTraceparent (the registration grants the first lease)
--          and carried by the runner.registered event
--
-- The realm's policies override ARGV[9] (p:leaseTtlMs), ARGV[20]
-- (p:heartbeatIntervalMs), ARGV[18]/ARGV[19] (p:registerRate,
-- p:registerBurst) and add a realm limit (p:maxRunners, counted in KEYS[17]).
--
-- Returns {0, epoch, lease deadline ms, now ms, registeredAt ms, lease TTL ms,
--          heartbeat interval ms} on success;
--         {1, scope} when MAX_RUNNERS (scope 'global') or the realm's
--         maxRunners (scope 'realm') live runners are registered already;
--         {3, state} the realm is draining or closed;
--         {4} unknown realm (and ARGV[17] is '0');
--         {5} the runner belongs to another realm and the caller is scoped;
--         {6, retry after ms} the realm's registration bucket is empty;
--         {2, status} when the runner is live (online or unreachable) and the
--         caller holds no credential of it (ARGV[13] is '0' and ARGV[14] is
--         not its current token hash): nobody takes over a live runner.
-- Checking the credential here, in the step that re-registers, means a
-- runner going offline, or re-registering with a new token, between the
-- API's authentication and this script changes nothing: the state read here
-- is the state written.
-- The stats hash counts the registration as registrations:new (an unknown
-- id), registrations:returned (a runner that was offline: with lease
-- expiries, the mark of flapping) or registrations:renewed (a live one).
-- A re-registration fails the runner's running tasks (they belonged to the
-- previous incarnation, which can no longer report them); pending tasks stay.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id = ARGV[1]
local ttl = tonumber(ARGV[9])
local maxRunners = tonumber(ARGV[10])
local interval = tonumber(ARGV[20])
local rate, burst = tonumber(ARGV[18]), tonumber(ARGV[19])

local realm = redis.call('HMGET', KEYS[16], 'state', 'p:leaseTtlMs', 'p:heartbeatIntervalMs', 'p:maxRunners',
  'p:registerRate', 'p:registerBurst')
if not realm[1] then
  if ARGV[4] ~= 'default' and ARGV[17] ~= '1' then
    return {4}
  end
  redis.call('HSET', KEYS[16], 'name', ARGV[4], 'description', '', 'state', 'active', 'policies', '{}',
    'createdAt', now, 'stateChangedAt', now, 'stateChangedBy', 'registration')
  redis.call('ZADD', KEYS[8], 0, ARGV[4])
  realm[1] = 'active'
end
if realm[1] ~= 'active' then
  return {3, realm[1]}
end
ttl = tonumber(realm[2]) or ttl
interval = tonumber(realm[3]) or interval
rate = tonumber(realm[5]) or rate
burst = tonumber(realm[6]) or burst

local prev = redis.call('HMGET', KEYS[1], 'status', 'realm', 'registeredAt', 'epoch', 'tokenHash')
local prevStatus = prev[1]
local prevRealm = prev[2]
if prevRealm == '' then prevRealm = 'default' end
if prevStatus and ARGV[16] == '1' and prevRealm ~= ARGV[4] then
  return {5}
end
local live = prevStatus == 'online' or prevStatus == 'unreachable'
if live and ARGV[13] ~= '1' and (ARGV[14] == '' or ARGV[14] ~= prev[5]) then
  return {2, prevStatus}
end

-- the realm's token bucket: rate tokens a second, at most burst
if rate > 0 then
  if burst < 1 then burst = 1 end
  local b = redis.call('HMGET', KEYS[18], 'tokens', 'at')
  local tokens, at = tonumber(b[1]), tonumber(b[2])
  if not tokens then
    tokens = burst
  else
    tokens = math.min(burst, tokens + (now - at) * rate / 1000)
  end
  if tokens < 1 then
    redis.call('HSET', KEYS[18], 'tokens', tostring(tokens), 'at', now)
    redis.call('PEXPIRE', KEYS[18], math.ceil(burst * 1000 / rate) + 1000)
    return {6, math.ceil((1 - tokens) * 1000 / rate)}
  end
  redis.call('HSET', KEYS[18], 'tokens', tostring(tokens - 1), 'at', now)
  redis.call('PEXPIRE', KEYS[18], math.ceil(burst * 1000 / rate) + 1000)
end

local sameRealmLive = live and prevRealm == ARGV[4]
if maxRunners > 0 and not live then
  local count = redis.call('ZCARD', KEYS[5]) + redis.call('ZCARD', KEYS[6])
  if count >= maxRunners then
    return {1, 'global'}
  end
end
local realmMax = tonumber(realm[4]) or 0
if realmMax > 0 and not sameRealmLive then
  if redis.call('ZCARD', KEYS[17]) >= realmMax then
    return {1, 'realm'}
  end
end

local epoch = redis.call('HINCRBY', KEYS[1], 'epoch', 1)
local kind = 'new'
if prevStatus == 'offline' then kind = 'returned' elseif live then kind = 'renewed' end
redis.call('HINCRBY', KEYS[14], 'registrations:' .. kind, 1)
local registeredAt = tonumber(prev[3]) or now
local deadline = now + ttl

if prev[2] and prev[2] ~= '' and prev[2] ~= ARGV[4] then
  redis.call('ZREM', ARGV[11] .. prev[2], id)
  redis.call('ZREM', ARGV[15] .. prev[2], id)
end

if prevStatus then
  local msg = 'runner re-registered under epoch ' .. epoch .. '; the task was running under an earlier epoch'
  for _, tid in ipairs(redis.call('SMEMBERS', KEYS[10])) do
    local tkey = ARGV[12] .. tid
    if redis.call('HGET', tkey, 'status') == 'running' then
      redis.call('HSET', tkey, 'status', 'failed', 'error', msg, 'finishedAt', now)
      redis.call('SREM', KEYS[10], tid)
      redis.call('ZREM', KEYS[13], tid)
      redis.call('HINCRBY', KEYS[14], 'tasks_completed:failed', 1)
    end
  end
  redis.call('DEL', KEYS[11])
end

redis.call('HSET', KEYS[1],
  'id', id, 'name', ARGV[2], 'version', ARGV[3], 'realm', ARGV[4],
  'endpoint', ARGV[5], 'labels', ARGV[6], 'capacity', ARGV[7],
  'status', 'online', 'activity', '', 'tokenHash', ARGV[8],
  'registeredAt', registeredAt, 'lastHeartbeat', now, 'leaseExpiresAt', deadline,
  'tasksRunning', 0, 'heartbeatTraceparent', ARGV[21])
redis.call('HDEL', KEYS[1], 'offlineReason', 'offlineAt', 'resources')

redis.call('SET', KEYS[2], epoch, 'PX', ttl)
redis.call('ZADD', KEYS[3], deadline, id)
redis.call('ZADD', KEYS[4], 0, id)
redis.call('ZREM', KEYS[6], id)
redis.call('ZREM', KEYS[7], id)
redis.call('ZADD', KEYS[5], 0, id)
redis.call('ZREM', KEYS[15], id)
redis.call('ZREM', KEYS[12], id)
redis.call('ZADD', ARGV[11] .. ARGV[4], 0, id)
redis.call('ZADD', KEYS[17], 0, id)

local runner = {id = id, name = ARGV[2], version = ARGV[3], realm = ARGV[4], endpoint = ARGV[5]}
if ARGV[6] ~= '' then runner.labels = cjson.decode(ARGV[6]) end
redis.call('XADD', KEYS[9], '*', 'type', 'runner.registered', 'ts', now, 'traceparent', ARGV[21],
  'data', cjson.encode({runner = runner, leaseEpoch = epoch}))

return {0, epoch, deadline, now, registeredAt, ttl, interval}
