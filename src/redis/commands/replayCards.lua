--[[
  Replay: writes projections (compare-and-set) and look-up index of cards whose events are
  already in the log, exactly as the live write did, without appending anything.

  Input:
    KEYS[1 ..]   one block per card (see includes/cardWrites.lua; event count 0)
    ARGV[1]      number of cards
    ARGV[2 ..]   one block per card

  Output:
    {1}          written
    {0, i}       card i's projection changed since it was read (a live writer): nothing was written
]]
--- @include "cardWrites"

local cards = readCards(tonumber(ARGV[1]), 1, 2)
local changed = firstChangedCard(cards)
if changed > 0 then return {0, changed} end

writeCards(cards, false, nil)
return {1}
