--[[
  Single-flight for refreshes: claims the in-flight marker of every card that has none.

  Input:
    KEYS[1 ..]  one in-flight marker per card
    ARGV[1]     the claiming job id
    ARGV[2]     marker TTL (ms): the whole life of a job, queued and retried

  Output: per card, '' when this call claimed it, else the id of the job already refreshing it
]]
local result = {}
for i, key in ipairs(KEYS) do
  local owner = redis.call('GET', key)
  if owner then
    result[i] = owner
  else
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
    result[i] = ''
  end
end
return result
