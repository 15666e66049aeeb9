-- realm_update.lua: change a realm's description and policies (PATCH).
--
-- KEYS[1] realm record hash
-- ARGV[1] '1' to set the description   ARGV[2] description
-- ARGV[3] policies JSON (no secret; the merged result)
-- ARGV[4] '1' to set the webhook secret   ARGV[5] webhook secret ('' removes it)
-- ARGV[6] flat policy fields as JSON object {"p:leaseTtlMs": "...", ...};
--         every p:* field of the record not in it is removed
--
-- Returns {0} changed; {1} unknown realm.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {1}
end
if ARGV[1] == '1' then redis.call('HSET', KEYS[1], 'description', ARGV[2]) end
redis.call('HSET', KEYS[1], 'policies', ARGV[3])
if ARGV[4] == '1' then
  if ARGV[5] == '' then
    redis.call('HDEL', KEYS[1], 'webhookSecret')
  else
    redis.call('HSET', KEYS[1], 'webhookSecret', ARGV[5])
  end
end
local flat = cjson.decode(ARGV[6])
for _, k in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(k, 1, 2) == 'p:' and flat[k] == nil then
    redis.call('HDEL', KEYS[1], k)
  end
end
for k, v in pairs(flat) do
  redis.call('HSET', KEYS[1], k, v)
end
return {0}
