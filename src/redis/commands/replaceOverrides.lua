--[[
  Replay's last step: writes the TTL overrides folded from the whole stream, but only if no event
  was appended after the last one replay read (else replay reads on and tries again), so that an
  override set by an operator while replay ran is never lost.

  Input:
    KEYS[1]   the event stream of shard 0 (where override events go)
    KEYS[2]   the override hash, in the same slot

    ARGV[1]   the id of the last event read ('' for an empty stream)
    ARGV[2 ..] card key, seconds, card key, seconds, ...

  Output: 1 written, 0 the stream has grown since
]]
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local newestId = ''
if newest[1] then newestId = newest[1][1] end
if newestId ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2])
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
return 1
