--[[
  The ids of a refresh queue's waiting jobs past its bound (`refresh.maxQueued`), lowest priority
  band first, oldest first within a band. BullMQ scores a prioritized job
  `priority * 2^32 + counter` (the counter grows with every add and priority change), so a band
  is a score range and its oldest job has the lowest score. O(1) under the bound; past it,
  O(log n + excess). Picks only: the caller removes them through BullMQ.

  Input:
    KEYS[1]  the queue's wait list
    KEYS[2]  the queue's prioritized set
    ARGV[1]  the bound

  Output: job ids, possibly none
]]
local excess = redis.call('LLEN', KEYS[1]) + redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[1])
if excess <= 0 then return {} end
local top = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
if #top == 0 then return {} end
local band = math.floor(tonumber(top[2]) / 4294967296)
local picked = {}
while band >= 0 and #picked < excess do
  local ids = redis.call('ZRANGEBYSCORE', KEYS[2], band * 4294967296, '(' .. ((band + 1) * 4294967296), 'LIMIT', 0, excess - #picked)
  for _, id in ipairs(ids) do picked[#picked + 1] = id end
  band = band - 1
end
return picked
