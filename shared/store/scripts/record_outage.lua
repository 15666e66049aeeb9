-- record_outage.lua: record one control-plane outage window and forget
-- windows older than the retention.
--
-- KEYS[1] outages zset (OutagesKey)
-- ARGV[1] member "<source>:<from ms>:<to ms>"
-- ARGV[2] score: the window's end in ms
-- ARGV[3] retention in ms: windows that ended longer ago (Redis TIME) go
-- ARGV[4] prefix "<source>:<from ms>:" of the member: a shorter record of
--         the same window (written while it was still going on) is replaced
--
-- Returns 0 (recordOutageAdded) when the window is new, 1
-- (recordOutageKnown) when it was recorded already.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local from = tonumber(string.match(ARGV[4], ':(%d+):$'))
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], from, '(' .. ARGV[2])) do
  if string.sub(m, 1, #ARGV[4]) == ARGV[4] then
    redis.call('ZREM', KEYS[1], m)
  end
end
local added = redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - tonumber(ARGV[3])))
if added == 1 then
  return 0
end
return 1
