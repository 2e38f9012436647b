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
-- Only a card's first entry is \`check\`ed; later entries of the same card follow from it.
-- Index sets (customer look-up, a customer's card keys) gain members and live as long as the
-- furthest card they point to; a deleted card leaves its customer's card set (\`unindex\`).
-- With \`plan.replay\`, the events are already in the stream: only the projections are written.
local plan = cjson.decode(ARGV[1])

for i, e in ipairs(plan.entries) do
  if e.set and e.set.check then
    local current = redis.call('GET', KEYS[e.set.k])
    if current ~= e.set.expect then return {0, i} end
  end
end

local ids = {}
for i, e in ipairs(plan.entries) do
  if not plan.replay then
    ids[i] = redis.call('XADD', KEYS[1], 'MINID', '~', plan.minId, '*', 'type', e.type, 'data', e.data)
  end
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
  if e.unindex then
    for _, ix in ipairs(e.unindex) do redis.call('SREM', KEYS[ix.k], ix.member) end
  end
end

if plan.release then
  for _, r in ipairs(plan.release) do
    if redis.call('GET', KEYS[r.k]) == r.owner then redis.call('DEL', KEYS[r.k]) end
  end
end
if plan.message then redis.call('SPUBLISH', plan.channel, plan.message) end

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

/** Takes over in-flight markers held by jobs that have ended (see the comment inside). */
export const RECLAIM_REFRESH_LUA = `
-- Takes over the in-flight markers of cards whose refresh job has ended without releasing them.
-- KEYS: one marker per card. ARGV[1]: the claiming job id, ARGV[2]: marker TTL in ms,
-- ARGV[2 + i]: the dead job that held KEYS[i]. A marker that changed hands meanwhile is joined.
-- Returns, per card, '' when this call took it, else the id of the job now refreshing it.
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
`;

/** Replaces the TTL-override hash as of a stream position (see the comment inside). */
export const REPLACE_OVERRIDES_LUA = `
-- Replay's last step: writes the TTL overrides folded from the whole stream, but only if no event
-- was appended after the last one replay read (else it reads on and tries again), so an override
-- set by an operator while replay ran is never lost.
-- KEYS[1]: the event stream, KEYS[2]: the override hash. ARGV[1]: the id of the last event read
-- ('' for an empty stream); ARGV[2..]: card key, seconds, card key, seconds, ...
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local newestId = ''
if newest[1] then newestId = newest[1][1] end
if newestId ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2])
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
return 1
`;
