-- offline_since_backfill.lua: put offline runners that went offline before
-- the offline-since index existed into it, one page of the offline status
-- index per call, so that the retention purge sees them. Idempotent, and
-- harmless on a race: runner_purge.lua re-checks every runner it is given.
--
-- KEYS[1] status:offline zset    KEYS[2] offline-since zset
-- ARGV[1] exclusive lexical cursor ('' = from the start)   ARGV[2] page size
-- ARGV[3] runner key prefix
--
-- Returns {next cursor ('' at the end), runners added}.
local min = '-'
if ARGV[1] ~= '' then min = '(' .. ARGV[1] end
local count = tonumber(ARGV[2])
local ids = redis.call('ZRANGEBYLEX', KEYS[1], min, '+', 'LIMIT', 0, count)
local added = 0
for _, id in ipairs(ids) do
  if not redis.call('ZSCORE', KEYS[2], id) then
    local f = redis.call('HMGET', ARGV[3] .. id, 'status', 'offlineAt')
    if f[1] == 'offline' then
      redis.call('ZADD', KEYS[2], tonumber(f[2]) or 0, id)
      added = added + 1
    end
  end
end
local next = ''
if #ids == count then next = ids[#ids] end
return {next, added}
