/**
 * Lua scripts run by the Redis adapters. Kept as strings so the build needs no asset copying;
 * ioredis sends each once and then calls it by SHA.
 */

/**
 * Appends events to the log and updates their projections atomically (see the comment inside).
 */
export const APPLY_EVENTS_LUA = `
-- Appends events to the log and updates their projections in one atomic step, so a crash can
-- never leave a projection without its event or an event without its projection.
-- KEYS[1] is the event stream; ARGV[1] is a JSON plan whose \`k\` fields index into KEYS.
-- Card projections are compare-and-set: when a card key no longer holds what the caller read
-- (\`expect\`, false for "absent"), nothing is written and {0, i} tells the caller to re-read.
local plan = cjson.decode(ARGV[1])

for i, e in ipairs(plan.entries) do
  if e.set then
    local current = redis.call('GET', KEYS[e.set.k])
    if current ~= e.set.expect then return {0, i} end
  end
end

local ids = {}
for i, e in ipairs(plan.entries) do
  ids[i] = redis.call('XADD', KEYS[1], 'MINID', '~', plan.minId, '*', 'type', e.type, 'data', e.data)
  if e.set then
    if e.set.value == false then
      redis.call('DEL', KEYS[e.set.k])
    else
      redis.call('SET', KEYS[e.set.k], e.set.value, 'PX', e.set.px)
    end
  end
  if e.hset then redis.call('HSET', KEYS[e.hset.k], e.hset.f, e.hset.v) end
  if e.hdel then redis.call('HDEL', KEYS[e.hdel.k], e.hdel.f) end
  if e.index then
    for _, ix in ipairs(e.index) do
      redis.call('SADD', KEYS[ix.k], ix.member)
      if redis.call('PTTL', KEYS[ix.k]) < ix.px then redis.call('PEXPIRE', KEYS[ix.k], ix.px) end
    end
  end
end

if plan.release then
  for _, r in ipairs(plan.release) do
    if redis.call('GET', KEYS[r.k]) == r.owner then redis.call('DEL', KEYS[r.k]) end
  end
end
if plan.message then redis.call('PUBLISH', plan.channel, plan.message) end

table.insert(ids, 1, 1)
return ids
`;

/** Single-flight claim of refresh in-flight markers (see the comment inside). */
export const CLAIM_REFRESH_LUA = `
-- Single-flight for refreshes: claims the in-flight marker of every card that has none.
-- KEYS: one in-flight marker per card. ARGV[1]: the claiming job id, ARGV[2]: marker TTL in ms.
-- Returns, per card, '' when this call claimed it, else the id of the job already refreshing it.
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
`;
