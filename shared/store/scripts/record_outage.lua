-- record_outage.lua: record one control-plane outage window, so that the
-- sweeper gives back, before its next sweep, the lease time the outage took
-- away (outage_grace.lua). Recording the same window twice stores it once.
--
-- KEYS[1] outages zset   KEYS[2] outages:pending zset   KEYS[3] outages:granted hash
-- ARGV[1] from ms   ARGV[2] to ms (0 = now, by Redis TIME)   ARGV[3] source
-- ARGV[4] windows kept in the history
--
-- Returns {0, window id, from ms, to ms} recorded;
--         {1} not a window (from not positive, or to before from).
local from = tonumber(ARGV[1])
local to = tonumber(ARGV[2])
if to == 0 then
  local t = redis.call('TIME')
  to = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
if not from or from <= 0 or to < from then
  return {1}
end
local id = ARGV[3] .. ':' .. from .. ':' .. to
redis.call('ZADD', KEYS[1], to, id)
redis.call('ZADD', KEYS[2], from, id)
local keep = tonumber(ARGV[4])
local n = redis.call('ZCARD', KEYS[1])
if n > keep then
  for _, old in ipairs(redis.call('ZRANGE', KEYS[1], 0, n - keep - 1)) do
    redis.call('ZREM', KEYS[1], old)
    redis.call('HDEL', KEYS[3], old)
  end
end
return {0, id, from, to}
