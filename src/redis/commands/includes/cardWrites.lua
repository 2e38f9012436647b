--[[
  Card writes shared by recordRefreshOutcome, appendCardEvents and replayCards: each card's events, its
  projection and components, its customer's card set and look-up index, in one step.

  A card's block, read from KEYS from index `k` and from ARGV from index `a`:
    KEYS  projection, components, the customer's card set, then `indexCount` look-up index sets
    ARGV  expected projection ('' = absent), new projection ('' = delete), PX of both,
          components mode ('set' | 'keep' | 'none'), components JSON (used with 'set'),
          index member, indexCount, event count n, then n pairs of event type and data
  Projection and components share one expiry: set in one script they expire at the same instant,
  so a projection that can be read always has its components ('keep' only moves their expiry).
]]
local function readCards(count, k, a)
  local cards = {}
  for i = 1, count do
    local card = {
      projection = KEYS[k], components = KEYS[k + 1], cardSet = KEYS[k + 2],
      expect = ARGV[a], value = ARGV[a + 1], px = ARGV[a + 2],
      componentsMode = ARGV[a + 3], componentsJson = ARGV[a + 4], member = ARGV[a + 5],
      indexes = {}, events = {},
    }
    local indexCount = tonumber(ARGV[a + 6])
    for j = 1, indexCount do card.indexes[j] = KEYS[k + 2 + j] end
    k = k + 3 + indexCount
    local eventCount = tonumber(ARGV[a + 7])
    a = a + 8
    for j = 1, eventCount do
      card.events[j] = { ARGV[a], ARGV[a + 1] }
      a = a + 2
    end
    cards[i] = card
  end
  return cards, k, a
end

-- The position of the first card whose projection is not what the caller read, or 0.
local function firstChangedCard(cards)
  for i, card in ipairs(cards) do
    local current = redis.call('GET', card.projection)
    if (current or '') ~= card.expect then return i end
  end
  return 0
end

-- Appends each card's events to `stream` (when given, trimmed to `minId`), writes its
-- projection, components and index entries. Returns the ids of the appended events.
local function writeCards(cards, stream, minId)
  local ids = {}
  for _, card in ipairs(cards) do
    if stream then
      for _, event in ipairs(card.events) do
        ids[#ids + 1] = redis.call('XADD', stream, 'MINID', '~', minId, '*', 'type', event[1], 'data', event[2])
      end
    end
    if card.value == '' then
      redis.call('DEL', card.projection, card.components)
      redis.call('SREM', card.cardSet, card.projection)
    else
      redis.call('SET', card.projection, card.value, 'PX', card.px)
      if card.componentsMode == 'set' then
        redis.call('SET', card.components, card.componentsJson, 'PX', card.px)
      elseif card.componentsMode == 'keep' then
        redis.call('PEXPIRE', card.components, card.px)
      else
        redis.call('DEL', card.components)
      end
      -- Index sets live as long as the furthest card they point to.
      local px = tonumber(card.px)
      redis.call('SADD', card.cardSet, card.projection)
      if redis.call('PTTL', card.cardSet) < px then redis.call('PEXPIRE', card.cardSet, px) end
      for _, index in ipairs(card.indexes) do
        redis.call('SADD', index, card.member)
        if redis.call('PTTL', index) < px then redis.call('PEXPIRE', index, px) end
      end
    end
  end
  return ids
end
