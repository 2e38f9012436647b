--[[
  Records what a refresh job found out, in one atomic step: appends its cards' events, updates
  their projections (compare-and-set) and look-up index, releases the job's in-flight markers and
  announces the outcome to waiting requests (SPUBLISH on the shard's channel).

  Input:
    KEYS[1]        the shard's event stream
    KEYS[2]        the shard's refresh-outcome channel
    KEYS[3 .. 2+m] in-flight markers to release (those still held by ARGV[4])
    KEYS[3+m ..]   one block per card (see includes/cardWrites.lua)

    ARGV[1]        MINID the stream is trimmed to (approximately)
    ARGV[2]        number of cards
    ARGV[3]        m, number of markers
    ARGV[4]        the job id that owns the markers
    ARGV[5]        the outcome notice (JSON, '' = none)
    ARGV[6 ..]     one block per card

  Output:
    {1, id, ...}   the ids of the appended events: everything was written
    {0, i}         card i's projection changed since it was read: nothing was written
]]
--- @include "cardWrites"

local markerCount = tonumber(ARGV[3])
local cards = readCards(tonumber(ARGV[2]), 3 + markerCount, 6)
local changed = firstChangedCard(cards)
if changed > 0 then return {0, changed} end

local ids = writeCards(cards, KEYS[1], ARGV[1])
for i = 3, 2 + markerCount do
  if redis.call('GET', KEYS[i]) == ARGV[4] then redis.call('DEL', KEYS[i]) end
end
if ARGV[5] ~= '' then redis.call('SPUBLISH', KEYS[2], ARGV[5]) end

table.insert(ids, 1, 1)
return ids
