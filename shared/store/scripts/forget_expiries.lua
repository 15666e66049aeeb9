-- forget_expiries.lua: remove runners from the recent-expiries records, the
-- fleet-wide one and their realm's, for those whose offline transition found
-- the lease alive (a heartbeat won the race), so that they count towards no
-- correlated loss.
--
-- KEYS[1] recent expiries zset
-- ARGV[1] runner key prefix   ARGV[2] realm recent-expiries prefix   ARGV[3..] runner ids
--
-- Returns the number of ids removed from KEYS[1].
local n = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  n = n + redis.call('ZREM', KEYS[1], id)
  local r = redis.call('HGET', ARGV[1] .. id, 'realm')
  if not r or r == '' then r = 'default' end
  redis.call('ZREM', ARGV[2] .. r, id)
end
return n
