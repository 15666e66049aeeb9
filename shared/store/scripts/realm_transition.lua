-- realm_transition.lua: move a realm through its lifecycle and write the
-- transition's outbox event in the same step.
--
--   active -> draining -> closed;  draining -> active;  active -> closed
--
-- KEYS[1] realm record hash   KEYS[2] outbox stream
-- ARGV[1] realm name   ARGV[2] target state (active, draining, closed)
-- ARGV[3] who (a key id, or "global operator")
--
-- Returns {0, state, changedAt ms, previous state} on a transition;
--         {1} unknown realm; {2, current state} not allowed from there.
local cur = redis.call('HGET', KEYS[1], 'state')
if not cur then
  return {1}
end
local target = ARGV[2]
local allowed = {
  draining = {active = true},
  active = {draining = true},
  closed = {active = true, draining = true},
}
if not allowed[target] or not allowed[target][cur] then
  return {2, cur}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], 'state', target, 'stateChangedAt', now, 'stateChangedBy', ARGV[3])
redis.call('XADD', KEYS[2], '*', 'type', 'realm.' .. target, 'ts', now,
  'data', cjson.encode({realm = {name = ARGV[1], state = target, previousState = cur,
    stateChangedBy = ARGV[3], stateChangedAtMs = now}}))
return {0, target, now, cur}
