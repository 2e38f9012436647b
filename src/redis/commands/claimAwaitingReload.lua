--[[
  Claims the contexts of a landed card whose served marker still says placeholder or error and has
  not expired: deletes those markers (their fields in the contexts' hashes) and returns their
  members. Every member looked at leaves the set (a marker since overwritten by a data answer, or
  expired, needs nothing).

  Input:
    KEYS[1]      a card's awaiting-reload set
    KEYS[2 ..]   the served-marker hashes of the contexts ARGV[3 ..]
    ARGV[1]      now (ms)
    ARGV[2]      the card key (the field in those hashes)
    ARGV[3 ..]   set members (contexts)
  A marker value is '<until>' (data) or '<until>:placeholder|error'.

  Output: the claimed members
]]
local claimed = {}
local now = tonumber(ARGV[1])
local field = ARGV[2]
for i = 2, #KEYS do
  local member = ARGV[i + 1]
  redis.call('SREM', KEYS[1], member)
  local value = redis.call('HGET', KEYS[i], field)
  if value then
    local untilMs = string.match(value, '^(%d+):%a+$')
    if untilMs and tonumber(untilMs) > now then
      redis.call('HDEL', KEYS[i], field)
      claimed[#claimed + 1] = member
    end
  end
end
return claimed
