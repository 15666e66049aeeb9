-- heartbeat.lua: renew a runner's lease and collect what the controller wants from it.
--
-- KEYS[1] runner hash             KEYS[2] lease key
-- KEYS[3] lease deadline zset     KEYS[4] status:online zset
-- KEYS[5] status:unreachable zset KEYS[6] quarantine zset
-- KEYS[7] runner pending zset     KEYS[8] runner cancel zset
-- KEYS[9] outbox stream
-- ARGV[1] runner id   ARGV[2] lease epoch (0 = not checked)   ARGV[3] lease TTL ms
-- ARGV[4] activity ('' = unchanged)   ARGV[5] resources JSON ('' = unchanged)
-- ARGV[6] tasks running ('' = unchanged)   ARGV[7] version ('' = unchanged)
-- ARGV[8] task key prefix   ARGV[9] max tasks to return   ARGV[10] cancel retention ms
-- ARGV[11] process start ms the runner reports ('' = unchanged)
-- ARGV[12] realm record key prefix   ARGV[13] heartbeat interval ms (global)
-- ARGV[14] traceparent of the heartbeat's server span ('' = none): stored as
--          heartbeatTraceparent, and carried by a runner.recovered event
-- ARGV[15] hash of the runner token the caller presented ('' = not checked: an
--          API key RUNNER_AUTH lets act as any runner, or auth off)
--
-- The runner's realm overrides ARGV[3] (p:leaseTtlMs) and ARGV[13]
-- (p:heartbeatIntervalMs); its state rides on the reply (the API turns
-- draining into "drain": true and closed into "deregister": true).
--
-- Returns {0, epoch, deadline ms, pendingUpdate JSON or '', tasks, cancel ids,
--          realm state ('' when the realm has no record), interval ms}
--   where tasks is a flat list of (id, type, payload, timeoutMs, createdAt) tuples;
--         {1} unknown runner; {2, epoch} runner offline; {3, epoch} stale epoch;
--         {4} ARGV[15] is set and is not the runner's token hash (or no such
--         runner): the caller's credential is invalid, checked before anything else.
-- The token check is here so that a heartbeat is one round trip, not an HGET
-- of the hash and then this script. Lua compares interned strings by
-- reference, so the comparison takes the same time whatever the hash; and
-- the value compared is a SHA-256 of the token, never the token.
-- A heartbeat that reaches the script before the sweeper's transition wins the
-- race and keeps the runner online: the sweeper re-checks the lease atomically.
-- An unreachable (quarantined) runner comes back online under the same epoch.
local st = redis.call('HMGET', KEYS[1], 'status', 'epoch', 'pendingUpdate', 'version', 'realm', 'tokenHash')
local status = st[1]
if ARGV[15] ~= '' and (not status or st[6] ~= ARGV[15]) then
  return {4}
end
if not status then
  return {1}
end
local epoch = st[2]
if status == 'offline' then
  return {2, epoch}
end
if ARGV[2] ~= '0' and ARGV[2] ~= epoch then
  return {3, epoch}
end

local realmName = st[5]
if not realmName or realmName == '' then realmName = 'default' end
local realm = redis.call('HMGET', ARGV[12] .. realmName, 'state', 'p:leaseTtlMs', 'p:heartbeatIntervalMs')
-- Strings where Redis takes strings: Lua's number-to-string conversion
-- (sprintf %.14g) showed in Redis' profile.
-- A policy that is not a number falls back to the global value, as before.
local ttl, ttlMs = realm[2], tonumber(realm[2])
if not ttlMs then ttl, ttlMs = ARGV[3], tonumber(ARGV[3]) end
local interval = realm[3]
if not tonumber(interval) then interval = ARGV[13] end

local t = redis.call('TIME')
local nowMs = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local now = string.format('%d', nowMs)
local deadline = string.format('%d', nowMs + ttlMs)
local id = ARGV[1]

redis.call('SET', KEYS[2], epoch, 'PX', ttl)
redis.call('ZADD', KEYS[3], deadline, id)
-- One HSET for every field this heartbeat changes.
local fields = {'lastHeartbeat', now, 'leaseExpiresAt', deadline, 'heartbeatTraceparent', ARGV[14]}
local n = 6
if status == 'unreachable' then
  n = n + 2; fields[n - 1] = 'status'; fields[n] = 'online'
  local who = redis.call('HMGET', KEYS[1], 'name', 'endpoint')
  redis.call('ZREM', KEYS[5], id)
  redis.call('ZADD', KEYS[4], 0, id)
  redis.call('ZREM', KEYS[6], id)
  redis.call('XADD', KEYS[9], '*', 'type', 'runner.recovered', 'ts', now, 'traceparent', ARGV[14],
    'data', cjson.encode({runner = {id = id, name = who[1], version = st[4], realm = st[5], endpoint = who[2]}, leaseEpoch = tonumber(epoch)}))
end
if ARGV[4] ~= '' then n = n + 2; fields[n - 1] = 'activity'; fields[n] = ARGV[4] end
if ARGV[5] ~= '' then n = n + 2; fields[n - 1] = 'resources'; fields[n] = ARGV[5] end
if ARGV[6] ~= '' then n = n + 2; fields[n - 1] = 'tasksRunning'; fields[n] = ARGV[6] end
if ARGV[11] ~= '' then n = n + 2; fields[n - 1] = 'startedAt'; fields[n] = ARGV[11] end
local version = st[4]
if ARGV[7] ~= '' then
  version = ARGV[7]
  n = n + 2; fields[n - 1] = 'version'; fields[n] = version
end
redis.call('HSET', KEYS[1], unpack(fields))

local pending = st[3] or ''
if pending ~= '' and version then
  local want = cjson.decode(pending).version or ''
  if string.gsub(want, '^v', '') == string.gsub(version, '^v', '') then
    redis.call('HDEL', KEYS[1], 'pendingUpdate')
    pending = ''
  end
end

local tasks = {}
local cancel = {}
-- Most heartbeats find neither pending tasks nor cancellations: one EXISTS
-- spares them the three reads below.
if redis.call('EXISTS', KEYS[7], KEYS[8]) > 0 then
  for _, tid in ipairs(redis.call('ZRANGE', KEYS[7], 0, tonumber(ARGV[9]) - 1)) do
    local f = redis.call('HMGET', ARGV[8] .. tid, 'type', 'payload', 'timeoutMs', 'createdAt', 'status')
    if f[5] == 'pending' then
      table.insert(tasks, tid)
      table.insert(tasks, f[1] or '')
      table.insert(tasks, f[2] or '')
      table.insert(tasks, f[3] or '0')
      table.insert(tasks, f[4] or '0')
    else
      redis.call('ZREM', KEYS[7], tid)
    end
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[8], '-inf', nowMs - tonumber(ARGV[10]))
  cancel = redis.call('ZRANGE', KEYS[8], 0, -1)
end

return {0, epoch, deadline, pending, tasks, cancel, realm[1] or '', interval}
