--[[
  Sets or clears a card key's run-time TTL override: appends the `ttl.override_*` event and
  updates the override hash in one atomic step.

  Input:
    KEYS[1]  the event stream of shard 0 (where override events go)
    KEYS[2]  the override hash (card key -> seconds), in the same slot

    ARGV[1]  MINID the stream is trimmed to (approximately)
    ARGV[2]  event type
    ARGV[3]  event data (JSON)
    ARGV[4]  card key
    ARGV[5]  seconds in force afterwards ('' = no override)

  Output: the id of the appended event
]]
local id = redis.call('XADD', KEYS[1], 'MINID', '~', ARGV[1], '*', 'type', ARGV[2], 'data', ARGV[3])
if ARGV[5] == '' then
  redis.call('HDEL', KEYS[2], ARGV[4])
else
  redis.call('HSET', KEYS[2], ARGV[4], ARGV[5])
end
return id
