/**
 * The warm path serves cached components as the bytes they were stored as (their own key, beside
 * the projection): decoding a stored card for serving and writing the `/cards` answer must give
 * exactly the bytes that parsing the state and `JSON.stringify({ cards })` give, for any components.
 */
import { describe, expect, it } from 'vitest';
import type { CardState } from '../../src/core/card-state.js';
import { ComponentsJson } from '../../src/redis/components-json.js';
import { decodeCardState, decodeForServing, encodeComponents, encodeProjection } from '../../src/redis/card-codec.js';
import { serializeCardsAnswer } from '../../src/http/routes/cards.js';
import { AnswerMemory } from '../../src/http/answer-memory.js';
import type { PlainCard } from '../../src/service/card-resolver.js';

/** A state as the store writes it: projection and components. */
function stored(state: CardState): { projection: string; components: string | null } {
  return { projection: encodeProjection(state), components: state.data === null ? null : encodeComponents(state.data.components) };
}

const buf = (text: string | null) => (text === null ? null : Buffer.from(text, 'utf8'));

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

describe('decodeForServing', () => {
  it.each(componentSets.map((c, i) => [i, c] as const))('keeps components set %i as the stored bytes, byte for byte', (_i, components) => {
    const { projection, components: json } = stored(stateWith(components));
    const full = decodeCardState(projection, json)!;
    const served = decodeForServing(buf(projection), buf(json))!;
    const kept = served.data!.components;
    expect(kept).toBeInstanceOf(ComponentsJson);
    expect((kept as ComponentsJson).bytes.equals(Buffer.from(JSON.stringify(full.data!.components), 'utf8'))).toBe(true);
    expect(full).toEqual(stateWith(JSON.parse(JSON.stringify(components)) as unknown[]));
    expect({ ...served, data: { ...served.data!, components: full.data!.components } }).toEqual(full);
  });

  it('decodes null components and no data like the full decoder; a projection with data but no components is absent', () => {
    for (const state of [stateWith(null), { ...stateWith([]), data: null }]) {
      const { projection, components } = stored(state);
      expect(decodeForServing(buf(projection), buf(components))).toEqual(decodeCardState(projection, components));
      expect(decodeCardState(projection, components)).toEqual(state);
    }
    const { projection } = stored(stateWith([{ componentText: { text: 'x' } }]));
    expect(decodeForServing(buf(projection), null)).toBeUndefined();
    expect(decodeCardState(projection, null)).toBeUndefined();
    for (const broken of [null, '', 'not json', '{"data":{"ttlSeconds":1}']) {
      expect(decodeForServing(buf(broken), buf('[]'))).toBeUndefined();
      expect(decodeCardState(broken, '[]')).toBeUndefined();
    }
    for (const notArray of ['{"not":"an array"}', '"text"', '']) {
      expect(decodeCardState(projection, notArray)).toBeUndefined();
      expect(decodeForServing(buf(projection), buf(notArray))).toBeUndefined();
    }
  });

  it('stores a projection without its null fields, and reads one written with them the same', () => {
    const plain = stateWith([], { customerExternalId: null });
    expect(encodeProjection(plain)).toBe('{"data":{"ttlSeconds":300,"fetchedAt":1700000000000,"upstream":"billing"},"customerEmail":"a\\"b@example.com"}');
    const failed: CardState = { ...plain, data: null, failure: { kind: 'retriable', at: 5, detail: 'HTTP 503', status: 503 }, invalidatedAt: 7, customerEmail: null };
    expect(encodeProjection(failed)).toBe('{"data":null,"failure":{"kind":"retriable","at":5,"detail":"HTTP 503","status":503},"invalidatedAt":7}');
    for (const state of [plain, failed, stateWith([])]) {
      const { projection, components } = stored(state);
      const { data, ...rest } = state;
      const withNulls = JSON.stringify({ data: data && { ttlSeconds: data.ttlSeconds, fetchedAt: data.fetchedAt, upstream: data.upstream }, ...rest });
      expect(decodeCardState(projection, components)).toEqual(state);
      expect(decodeCardState(withNulls, components)).toEqual(state);
      expect(decodeForServing(buf(withNulls), buf(components))).toEqual(decodeForServing(buf(projection), buf(components)));
    }
  });

  it('treats a projection whose envelope fails the check as absent, as the full decoder does', () => {
    const projection = JSON.stringify({ ...JSON.parse(stored(stateWith([])).projection), invalidatedAt: 'yesterday' });
    expect(decodeCardState(projection, '[]')).toBeUndefined();
    expect(decodeForServing(buf(projection), buf('[]'))).toBeUndefined();
  });
});

describe('serializeCardsAnswer', () => {
  const memory = new AnswerMemory();
  const serialize = (cards: readonly PlainCard[]) => serializeCardsAnswer({ cards }, memory).bytes;

  it('writes what JSON.stringify writes, with stored JSON text spliced in unchanged', () => {
    const components = componentSets[1]!;
    const cards: PlainCard[] = [
      { key: 'a', timeToLiveSeconds: 15, components: null },
      { key: 'b', timeToLiveSeconds: 300, components: components as PlainCard['components'] },
      { key: 'c', timeToLiveSeconds: 1, components: [] },
    ];
    const answer = serialize(cards);
    expect(answer.toString('utf8')).toBe(JSON.stringify({ cards }));
    expect(answer.length).toBe(Buffer.byteLength(JSON.stringify({ cards })));
    expect(serialize([]).toString('utf8')).toBe(JSON.stringify({ cards: [] }));
  });

  it('gives every answer bytes of its own while answers are cut from shared slabs (small and large ones)', () => {
    // Answers of 5 cards of ~2 KB, many slabs' worth, and some too large for a slab, all kept alive.
    const card = (n: number, size: number): PlainCard => ({
      key: `k${n}`,
      timeToLiveSeconds: n,
      components: ComponentsJson.fromBytes(Buffer.from(JSON.stringify([{ componentText: { text: String(n % 10).repeat(size) } }]))),
    });
    const expected: string[] = [];
    const answers: Buffer[] = [];
    for (let i = 0; i < 300; i++) {
      const cards = Array.from({ length: i % 50 === 0 ? 25 : 5 }, (_, j) => card(i + j, 2000 + (i % 7)));
      answers.push(serialize(cards));
      expected.push(JSON.stringify({ cards }));
    }
    expect(answers.map((a) => a.toString('utf8'))).toEqual(expected);
    expect(answers.every((a) => a.length === Buffer.byteLength(expected[answers.indexOf(a)]!))).toBe(true);
  });

  it.each(componentSets.map((c, i) => [i, c] as const))('writes components set %i kept as stored JSON text byte for byte', (_i, components) => {
    const { projection, components: json } = stored(stateWith(components));
    const text = (decodeForServing(buf(projection), buf(json))!.data!.components as ComponentsJson).text;
    const asText: PlainCard[] = [
      { key: 'a', timeToLiveSeconds: 15, components: null },
      { key: 'b', timeToLiveSeconds: 300, components: new ComponentsJson(text) },
    ];
    const parsed: PlainCard[] = [asText[0]!, { key: 'b', timeToLiveSeconds: 300, components: components as PlainCard['components'] }];
    // The text is spliced in unchanged, and a generic JSON.stringify (toJSON) gives the same bytes.
    expect(serialize(asText).toString('utf8')).toBe(JSON.stringify({ cards: parsed }));
    expect(JSON.stringify({ cards: asText })).toBe(JSON.stringify({ cards: parsed }));
  });
});
