/**
 * The warm path serves cached components as the JSON text they were stored as: decoding a stored
 * state for serving and writing the `/cards` answer must give exactly the bytes that parsing the
 * state and `JSON.stringify({ cards })` give, for any components, and fall back to the full
 * decoder for anything laid out differently.
 */
import { describe, expect, it } from 'vitest';
import type { CardState } from '../../src/core/card-state.js';
import { ComponentsJson } from '../../src/core/components-json.js';
import { decodeCardState, decodeCardStateForServing } from '../../src/redis/card-store.js';
import { serializeCardsAnswer } from '../../src/http/routes/cards.js';
import type { PlainCard } from '../../src/service/card-resolver.js';

const TRICKY_TEXTS = [
  'plain',
  'quote " inside',
  'backslash \\ and \\" and \\\\',
  'ends with backslash \\',
  'brackets ] } [ { inside ], "ttlSeconds": 1',
  'unicode é 漢字 🎉 \u2028 \u2029',
  'lone surrogate \ud800 end',
  'control \u0001 \n \t chars',
  '',
];

function stateWith(components: unknown[] | null, extra: Partial<CardState> = {}): CardState {
  return {
    data: { components: components as never, ttlSeconds: 300, fetchedAt: 1_700_000_000_000, upstream: 'billing' },
    failure: null,
    invalidatedAt: null,
    customerEmail: 'a"b@example.com',
    customerExternalId: 'x]y',
    ...extra,
  } as CardState;
}

const componentSets: unknown[][] = [
  [],
  TRICKY_TEXTS.map((text) => ({ componentText: { text, textColor: 'MUTED' } })),
  [{ componentRow: { rowMainContent: [{ componentText: { text: '[[[' } }], rowAsideContent: [{ componentBadge: { badgeLabel: ']]]', badgeColor: 'RED' } }] } }],
  [{ componentContainer: { containerContent: [{ componentDivider: { dividerSpacingSize: 'S' } }, { componentSpacer: { spacerSize: 'XS' } }] } }],
];

describe('decodeCardStateForServing', () => {
  it.each(componentSets.map((c, i) => [i, c] as const))('keeps components set %i as the stored JSON text, byte for byte', (_i, components) => {
    const raw = JSON.stringify(stateWith(components));
    const full = decodeCardState(raw)!;
    const served = decodeCardStateForServing(raw)!;
    const kept = served.data!.components;
    expect(kept).toBeInstanceOf(ComponentsJson);
    expect((kept as ComponentsJson).text).toBe(JSON.stringify(full.data!.components));
    expect(JSON.stringify(served)).toBe(raw);
    expect({ ...served, data: { ...served.data!, components: full.data!.components } }).toEqual(full);
  });

  it('takes the full decoder for null components, no data, other layouts and broken values', () => {
    for (const state of [stateWith(null), { ...stateWith([]), data: null }]) {
      const raw = JSON.stringify(state);
      expect(decodeCardStateForServing(raw)).toEqual(decodeCardState(raw));
    }
    const { failure, ...rest } = stateWith([{ componentText: { text: 'x' } }]);
    const reordered = JSON.stringify({ failure, ...rest });
    const fallback = decodeCardStateForServing(reordered);
    expect(fallback).toEqual(decodeCardState(reordered));
    expect(fallback!.data!.components).not.toBeInstanceOf(ComponentsJson);
    for (const broken of [null, '', 'not json', '{"data":{"components":[', '{"data":{"components":["x"]', '{"data":{"components":[]}']) {
      expect(decodeCardStateForServing(broken)).toBeUndefined();
    }
  });

  it('treats a state whose envelope fails the check as absent, as the full decoder does', () => {
    const raw = JSON.stringify({ ...stateWith([{ componentText: { text: 'x' } }]), invalidatedAt: 'yesterday' });
    expect(decodeCardState(raw)).toBeUndefined();
    expect(decodeCardStateForServing(raw)).toBeUndefined();
  });
});

describe('serializeCardsAnswer', () => {
  it('writes what JSON.stringify writes, with stored JSON text spliced in unchanged', () => {
    const components = componentSets[1]!;
    const cards: PlainCard[] = [
      { key: 'a', timeToLiveSeconds: 15, components: null },
      { key: 'b', timeToLiveSeconds: 300, components: components as PlainCard['components'] },
      { key: 'c', timeToLiveSeconds: 1, components: [] },
    ];
    expect(serializeCardsAnswer({ cards }).toString('utf8')).toBe(JSON.stringify({ cards }));
    expect(serializeCardsAnswer({ cards: [] }).toString('utf8')).toBe(JSON.stringify({ cards: [] }));
  });

  it.each(componentSets.map((c, i) => [i, c] as const))('writes components set %i kept as stored JSON text byte for byte', (_i, components) => {
    const raw = JSON.stringify(stateWith(components));
    const text = (decodeCardStateForServing(raw)!.data!.components as ComponentsJson).text;
    const asText: PlainCard[] = [
      { key: 'a', timeToLiveSeconds: 15, components: null },
      { key: 'b', timeToLiveSeconds: 300, components: new ComponentsJson(text) },
    ];
    const parsed: PlainCard[] = [asText[0]!, { key: 'b', timeToLiveSeconds: 300, components: components as PlainCard['components'] }];
    // The text is spliced in unchanged, and a generic JSON.stringify (toJSON) gives the same bytes.
    expect(serializeCardsAnswer({ cards: asText }).toString('utf8')).toBe(JSON.stringify({ cards: parsed }));
    expect(JSON.stringify({ cards: asText })).toBe(JSON.stringify({ cards: parsed }));
  });
});
