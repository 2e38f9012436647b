--[[
  Takes over the in-flight markers of cards whose refresh job has ended without releasing them.
  A marker that changed hands meanwhile is joined instead.

  Input:
    KEYS[1 ..]    one in-flight marker per card
    ARGV[1]       the claiming job id
    ARGV[2]       marker TTL (ms)
    ARGV[2 + i]   the ended job that held KEYS[i]

  Output: per card, '' when this call took it, else the id of the job now refreshing it
]]
local result = {}
for i, key in ipairs(KEYS) do
  local owner = redis.call('GET', key)
  if owner == false or owner == ARGV[2 + i] then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
    result[i] = ''
  else
    result[i] = owner
  end
end
return result
