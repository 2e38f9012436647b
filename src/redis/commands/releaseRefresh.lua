--[[
  Gives back in-flight markers without recording an outcome (the job could not be queued): only
  those still held by the job, since a lapsed marker may have been claimed by another job.

  Input:
    KEYS[1 ..]  in-flight markers
    ARGV[1]     the job id that claimed them

  Output: how many markers were released
]]
local released = 0
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('DEL', key)
    released = released + 1
  end
end
return released
