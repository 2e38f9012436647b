--[[
  Appends card-state events outside a refresh job (an invalidation's `card.invalidated`) and
  updates their cards' projections (compare-and-set) and look-up index, in one atomic step.

  Input:
    KEYS[1]      the shard's event stream
    KEYS[2 ..]   one block per card (see includes/cardWrites.lua)

    ARGV[1]      MINID the stream is trimmed to (approximately)
    ARGV[2]      number of cards
    ARGV[3 ..]   one block per card

  Output:
    {1, id, ...} the ids of the appended events
    {0, i}       card i's projection changed since it was read: nothing was written
]]
--- @include "cardWrites"

local cards = readCards(tonumber(ARGV[2]), 2, 3)
local changed = firstChangedCard(cards)
if changed > 0 then return {0, changed} end

local ids = writeCards(cards, KEYS[1], ARGV[1])
table.insert(ids, 1, 1)
return ids
