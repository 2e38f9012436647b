--[[
  Records what `/cards` answers gave Plain (those of one event-loop turn, of one event-log shard):
  sets each answered card's field in its context's served-marker hash, which lives as long as its
  longest marker, and puts the contexts answered with a placeholder or error on their cards'
  awaiting-reload sets, which do too.

  Input:
    KEYS[1 .. h]   served-marker hashes (h = ARGV[1])
    KEYS[h+1 ..]   awaiting-reload sets
    ARGV[1]        h
    then per hash: PX (its longest marker's), n, then n pairs of card key, value
    then per set:  member, PX

  Output: h
]]
local h = tonumber(ARGV[1])
local at = 2
for i = 1, h do
  local px = tonumber(ARGV[at])
  local n = tonumber(ARGV[at + 1])
  redis.call('HSET', KEYS[i], unpack(ARGV, at + 2, at + 1 + 2 * n))
  if redis.call('PTTL', KEYS[i]) < px then redis.call('PEXPIRE', KEYS[i], px) end
  at = at + 2 + 2 * n
end
for j = h + 1, #KEYS do
  local px = tonumber(ARGV[at + 1])
  redis.call('SADD', KEYS[j], ARGV[at])
  if redis.call('PTTL', KEYS[j]) < px then redis.call('PEXPIRE', KEYS[j], px) end
  at = at + 2
end
return h
