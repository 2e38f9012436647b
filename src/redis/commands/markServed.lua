--[[
  Records what `/cards` answers gave Plain (those of one event-loop turn, of one event-log shard):
  sets each answered card's served marker and puts the contexts answered with a placeholder or
  error on their cards' awaiting-reload sets, which live as long as their longest marker.

  Input:
    KEYS[1 .. n]   served markers (n = ARGV[1])
    KEYS[n+1 ..]   awaiting-reload sets
    ARGV[1]        n
    ARGV[2 .. ]    per marker: value, PX; then per set: member, PX

  Output: n
]]
local n = tonumber(ARGV[1])
for i = 1, n do
  redis.call('SET', KEYS[i], ARGV[2 * i], 'PX', ARGV[2 * i + 1])
end
for j = n + 1, #KEYS do
  local at = 2 * j
  local px = tonumber(ARGV[at + 1])
  redis.call('SADD', KEYS[j], ARGV[at])
  if redis.call('PTTL', KEYS[j]) < px then redis.call('PEXPIRE', KEYS[j], px) end
end
return n
