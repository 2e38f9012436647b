--[[
  Claims the contexts of a landed card whose served marker still says placeholder or error and has
  not expired: deletes those markers and returns their members. Every member looked at leaves the
  set (a marker since overwritten by a data answer, or expired, needs nothing).

  Input:
    KEYS[1]      a card's awaiting-reload set
    KEYS[2 ..]   the served markers of the members ARGV[2 ..]
    ARGV[1]      now (ms)
    ARGV[2 ..]   set members (contexts)
  A marker value is '<until>' (data) or '<until>:placeholder|error'.

  Output: the claimed members
]]
local claimed = {}
local now = tonumber(ARGV[1])
for i = 2, #KEYS do
  redis.call('SREM', KEYS[1], ARGV[i])
  local value = redis.call('GET', KEYS[i])
  if value then
    local untilMs = string.match(value, '^(%d+):%a+$')
    if untilMs and tonumber(untilMs) > now then
      redis.call('DEL', KEYS[i])
      claimed[#claimed + 1] = ARGV[i]
    end
  end
end
return claimed
