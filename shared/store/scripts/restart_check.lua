-- restart_check.lua: notice a Redis restart (or a failover to another
-- instance) by its run_id, and record the outage it was. The instance the
-- sweepers last saw is stored in Redis itself, so a sweeper that just
-- started (or was paused) sees a restart it was not there for, and two
-- sweepers record it once: the first call after the restart rewrites the
-- stored run_id. With persistence (AOF, RDB, a replica's copy) the stored
-- record survives the restart; without it there is nothing left to protect.
-- The outage runs from the latest check any sweeper made on the old
-- instance to now: at least the time Redis did not answer.
--
-- KEYS[1] redis:seen hash   KEYS[2] outages zset   KEYS[3] outages:pending zset
-- KEYS[4] outages:granted hash
-- ARGV[1] windows kept in the history
--
-- Returns {restarted (0/1), now ms, window id ('' unless restarted), from ms,
--          pending windows}
-- A server without INFO server (the embedded dev Redis of `make run`)
-- has no run_id: restarts go unnoticed there, and nothing else changes.
local info = redis.pcall('INFO', 'server')
local runId = ''
if type(info) == 'string' then
  runId = string.match(info, 'run_id:(%x+)') or ''
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local seen = redis.call('HMGET', KEYS[1], 'runId', 'at')
local restarted, id, from = 0, '', 0
if seen[1] and seen[1] ~= runId then
  restarted = 1
  from = tonumber(seen[2]) or now
  if from > now then from = now end
  -- the same write as record_outage.lua
  id = 'restart:' .. from .. ':' .. now
  redis.call('ZADD', KEYS[2], now, id)
  redis.call('ZADD', KEYS[3], from, id)
  local keep = tonumber(ARGV[1])
  local n = redis.call('ZCARD', KEYS[2])
  if n > keep then
    for _, old in ipairs(redis.call('ZRANGE', KEYS[2], 0, n - keep - 1)) do
      redis.call('ZREM', KEYS[2], old)
      redis.call('HDEL', KEYS[4], old)
    end
  end
end
redis.call('HSET', KEYS[1], 'runId', runId, 'at', now)
return {restarted, now, id, from, redis.call('ZCARD', KEYS[3])}
