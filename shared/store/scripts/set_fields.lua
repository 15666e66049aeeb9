-- set_fields.lua: set fields of an existing runner record, never creating one.
--
-- KEYS[1] runner hash
-- ARGV    field, value pairs
--
-- Returns 0 when written; 1 when the runner does not exist.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 1
end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 0
