import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { describeZodIssues, formatZodPath } from '../../src/core/describe-zod-issues.js';
import {
  CARD_KEY_PATTERN,
  CardKeySchema,
  CardsRequestSchema,
  parseUpstreamResponse,
  type UpstreamCardResult,
} from '../../src/core/plain-protocol.js';

const customer = { id: 'c_01GW2NTPQNPWTRKAC0G8Z518W2', email: 'alex@grocery.co', externalId: null };

function requestProblems(body: unknown): string[] {
  const result = CardsRequestSchema.safeParse(body);
  return result.success ? [] : describeZodIssues(result.error);
}

describe('CardKeySchema', () => {
  it.each(['plan-details', 'subscription_status', 'A', 'x'.repeat(500), 'customer-details-eu1'])('accepts %s', (key) => {
    expect(CardKeySchema.safeParse(key).success).toBe(true);
    expect(CARD_KEY_PATTERN.test(key)).toBe(true);
  });

  it.each(['', 'x'.repeat(501), 'plan details', 'plan.details', 'plan/details', 'plän', 'a\n'])('rejects %j', (key) => {
    expect(CardKeySchema.safeParse(key).success).toBe(false);
  });
});

describe('CardsRequestSchema: accepted bodies', () => {
  it.each<[string, unknown]>([
    [
      'docs protocol example',
      {
        cardKeys: ['plan-details', 'subscription-status'],
        customer: { id: 'c_01GW2NTPQNPWTRKAC0G8Z518W2', email: 'alex@grocery.co', externalId: 'customer-id-in-your-backend' },
        thread: { id: 'th_01J2HV0V702XKWMG58G169BS23', externalId: 'some-id' },
      },
    ],
    [
      'docs overview example (tenant)',
      {
        cardKeys: ['plan-details'],
        customer: { id: 'c_01GW2NTPQNPWTRKAC0G8Z518W2', email: 'alex@grocery.co', externalId: 'id-of-customer-in-your-systems' },
        thread: { id: 'th_01J2HV0V702XKWMG58G169BS23', externalId: 'some-id-you-specified' },
        tenant: { id: 'te_0VX2HE0V702AKWMG5SG16ABS11', externalId: 'some-id-you-specified' },
      },
    ],
    [
      "Langfuse's logged request",
      {
        cardKeys: ['test'],
        customer: { id: 'c_01JRJH726J9AFRBP5MQ5VTVAXH', externalId: null, email: 'demo@langfuse.com' },
        tenant: { id: 'te_01JVWYPQJ69AHE35R97NRAYM6H', externalId: 'cloud_DEV_org_seed-org-id' },
        thread: { id: 'th_01JVX0PDD7YXYHG66EWYFB2PAE', externalId: null },
        timestamp: '2025-05-23T13:09:39.820Z',
      },
    ],
    ['thread null', { cardKeys: ['a'], customer, thread: null }],
    ['tenant null', { cardKeys: ['a'], customer, thread: null, tenant: null }],
    ['customer with only id', { cardKeys: ['a'], customer: { id: 'c_1' } }],
    ['null email (Slack contact)', { cardKeys: ['a'], customer: { id: 'c_1', email: null, externalId: null } }],
    ['25 keys', { cardKeys: Array.from({ length: 25 }, (_, i) => `k${i}`), customer }],
  ])('accepts %s', (_name, body) => {
    expect(requestProblems(body)).toEqual([]);
  });

  it('keeps the known fields and timestamp', () => {
    const body = {
      cardKeys: ['test'],
      customer: { id: 'c_1', externalId: null, email: 'demo@langfuse.com' },
      tenant: { id: 'te_1', externalId: 'org' },
      thread: { id: 'th_1', externalId: null },
      timestamp: '2025-05-23T13:09:39.820Z',
    };
    expect(CardsRequestSchema.parse(body)).toEqual(body);
  });

  it('strips unknown extra fields everywhere', () => {
    const parsed = CardsRequestSchema.parse({
      cardKeys: ['a'],
      customer: { id: 'c_1', email: null, externalId: null, fullName: 'Alex' },
      thread: { id: 'th_1', externalId: null, title: 'Help' },
      tenant: { id: 'te_1', name: 'Acme' },
      workspace: { id: 'w_1' },
    });
    expect(parsed).toEqual({
      cardKeys: ['a'],
      customer: { id: 'c_1', email: null, externalId: null },
      thread: { id: 'th_1', externalId: null },
      tenant: { id: 'te_1' },
    });
    expect(parsed).not.toHaveProperty('workspace');
    expect(parsed.customer).not.toHaveProperty('fullName');
  });
});

describe('CardsRequestSchema: rejected bodies', () => {
  it.each<[string, unknown, string]>([
    ['missing customer.id', { cardKeys: ['a'], customer: { email: 'a@b.c' } }, 'customer.id: '],
    ['empty customer.id', { cardKeys: ['a'], customer: { id: '' } }, 'customer.id: '],
    ['missing customer', { cardKeys: ['a'] }, 'customer: '],
    ['no cardKeys', { customer }, 'cardKeys: '],
    ['0 keys', { cardKeys: [], customer }, 'cardKeys: '],
    ['26 keys', { cardKeys: Array.from({ length: 26 }, (_, i) => `k${i}`), customer }, 'cardKeys: '],
    ['bad key chars', { cardKeys: ['ok', 'plan details'], customer }, 'cardKeys[1]: card keys may only contain'],
    ['501-char key', { cardKeys: ['x'.repeat(501)], customer }, 'cardKeys[0]: card keys must be 1 to 500 characters long'],
    ['empty key', { cardKeys: ['ok', ''], customer }, 'cardKeys[1]: card keys must be 1 to 500 characters long'],
    ['non-string key', { cardKeys: [42], customer }, 'cardKeys[0]: '],
    ['thread without id', { cardKeys: ['a'], customer, thread: { externalId: null } }, 'thread.id: '],
    ['numeric email', { cardKeys: ['a'], customer: { id: 'c', email: 5 } }, 'customer.email: '],
    ['not an object', ['a'], 'expected object'],
  ])('rejects %s', (_name, body, expected) => {
    const lines = requestProblems(body);
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.join('\n')).toContain(expected);
  });
});

describe('parseUpstreamResponse: envelope', () => {
  it.each<[string, unknown]>([
    ['null', null],
    ['string', 'cards'],
    ['array', [{ key: 'a', components: null }]],
    ['no cards', { data: {} }],
    ['cards not an array', { cards: { key: 'a', components: null } }],
    ['cards null', { cards: null }],
  ])('fails the whole call for %s', (_name, body) => {
    const result = parseUpstreamResponse(body, ['a', 'b']);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.detail).toMatch(/not a JSON object|no "cards" array/);
  });
});

describe('parseUpstreamResponse: per card', () => {
  const valid = (key: string, extra: Record<string, unknown> = {}) => ({
    key,
    timeToLiveSeconds: 60,
    components: [{ componentText: { text: key } }],
    ...extra,
  });

  function cardsOf(body: unknown, keys: readonly string[]): Map<string, UpstreamCardResult> {
    const result = parseUpstreamResponse(body, keys);
    if (!result.ok) throw new Error(`unexpected envelope failure: ${result.detail}`);
    return result.cards;
  }

  it('accepts the docs response examples', () => {
    const cards = cardsOf(
      {
        cards: [
          {
            key: 'plan-details',
            timeToLiveSeconds: 86400,
            components: [
              {
                componentRow: {
                  rowMainContent: [{ componentText: { text: 'Plan', textColor: 'MUTED', textSize: 'M' } }],
                  rowAsideContent: [{ componentBadge: { badgeLabel: 'Starter', badgeColor: 'YELLOW' } }],
                },
              },
            ],
          },
        ],
      },
      ['plan-details'],
    );
    expect(cards.get('plan-details')).toMatchObject({ ok: true, timeToLiveSeconds: 86400 });
  });

  it('keeps components: null and an absent TTL as null', () => {
    const cards = cardsOf({ cards: [{ key: 'plan-details', components: null }] }, ['plan-details']);
    expect(cards.get('plan-details')).toEqual({ ok: true, components: null, timeToLiveSeconds: null });
  });

  it('reports a missing key and only that key', () => {
    const cards = cardsOf({ cards: [valid('a')] }, ['a', 'b']);
    expect(cards.get('a')).toMatchObject({ ok: true });
    expect(cards.get('b')).toEqual({ ok: false, detail: 'card "b" missing from response' });
    expect([...cards.keys()]).toEqual(['a', 'b']);
  });

  it('fails only the invalid card among valid ones, naming its path', () => {
    const cards = cardsOf(
      {
        cards: [
          valid('a'),
          valid('b', { components: [{ componentText: { text: 'ok' } }, { componentBadge: { badgeLabel: 'x', badgeColor: 'PINK' } }] }),
          valid('c'),
        ],
      },
      ['a', 'b', 'c'],
    );
    expect(cards.get('a')).toMatchObject({ ok: true });
    expect(cards.get('c')).toMatchObject({ ok: true });
    const b = cards.get('b');
    expect(b?.ok).toBe(false);
    if (b && !b.ok) expect(b.detail).toMatch(/^cards\[1\]\.components\[1\]\.componentBadge\.badgeColor: /);
  });

  it.each<[string, unknown]>([
    ['-1', -1],
    ['1.5', 1.5],
    ['"10"', '10'],
    ['true', true],
  ])('rejects timeToLiveSeconds %s', (_name, ttl) => {
    const cards = cardsOf({ cards: [valid('a', { timeToLiveSeconds: ttl }), valid('b')] }, ['a', 'b']);
    const a = cards.get('a');
    expect(a?.ok).toBe(false);
    if (a && !a.ok) expect(a.detail).toContain('cards[0].timeToLiveSeconds: ');
    expect(cards.get('b')).toMatchObject({ ok: true });
  });

  it.each<[string, unknown, number | null]>([
    ['0', 0, 0],
    ['null', null, null],
    ['10 (below Plain config minimum)', 10, 10],
    ['31536000', 31_536_000, 31_536_000],
  ])('accepts timeToLiveSeconds %s', (_name, ttl, expected) => {
    const cards = cardsOf({ cards: [valid('a', { timeToLiveSeconds: ttl })] }, ['a']);
    expect(cards.get('a')).toMatchObject({ ok: true, timeToLiveSeconds: expected });
  });

  it('rejects a card without components', () => {
    const cards = cardsOf({ cards: [{ key: 'a', timeToLiveSeconds: 5 }] }, ['a']);
    expect(cards.get('a')).toMatchObject({ ok: false, detail: expect.stringContaining('cards[0].components: ') });
  });

  it('ignores extra cards, malformed entries and extra top-level fields', () => {
    const cards = cardsOf(
      { data: {}, cards: [null, 'x', { key: 7 }, valid('extra', { components: 'broken' }), valid('a')] },
      ['a'],
    );
    expect([...cards.keys()]).toEqual(['a']);
    expect(cards.get('a')).toMatchObject({ ok: true });
  });

  it('takes the first card when a key appears twice', () => {
    const first = cardsOf({ cards: [valid('a', { timeToLiveSeconds: 1 }), valid('a', { timeToLiveSeconds: 2 })] }, ['a']);
    expect(first.get('a')).toMatchObject({ ok: true, timeToLiveSeconds: 1 });
    const invalidFirst = cardsOf({ cards: [valid('a', { timeToLiveSeconds: -1 }), valid('a')] }, ['a']);
    expect(invalidFirst.get('a')?.ok).toBe(false);
  });

  it('drops unknown component fields from the result', () => {
    const cards = cardsOf({ cards: [valid('a', { components: [{ componentText: { text: 'x', secret: 'y' } }] })] }, ['a']);
    expect(cards.get('a')).toEqual({ ok: true, timeToLiveSeconds: 60, components: [{ componentText: { text: 'x' } }] });
  });

  it('accepts an empty components array', () => {
    const cards = cardsOf({ cards: [valid('a', { components: [] })] }, ['a']);
    expect(cards.get('a')).toEqual({ ok: true, timeToLiveSeconds: 60, components: [] });
  });

  it('caps a long failure detail', () => {
    const components = Array.from({ length: 20 }, () => ({ componentText: { text: '' } }));
    const cards = cardsOf({ cards: [valid('a', { components })] }, ['a']);
    const a = cards.get('a');
    expect(a?.ok).toBe(false);
    if (a && !a.ok) {
      expect(a.detail.split('; ')).toHaveLength(6);
      expect(a.detail).toContain('and 15 more issue(s)');
    }
  });
});

describe('describeZodIssues', () => {
  it('formats paths with dots, indices and quoted odd keys', () => {
    expect(formatZodPath(['cards', 0, 'components', 2, 'componentRow'])).toBe('cards[0].components[2].componentRow');
    expect(formatZodPath(['headers', 'x-api-key'])).toBe('headers["x-api-key"]');
    expect(formatZodPath([])).toBe('');
  });

  it('gives one line per issue, and the bare message at the root', () => {
    const schema = z.object({ a: z.string(), b: z.array(z.number()) });
    expect(describeZodIssues(schema.safeParse({ a: 1, b: [1, 'x'] }).error!)).toEqual([
      expect.stringMatching(/^a: /),
      expect.stringMatching(/^b\[1\]: /),
    ]);
    const [root] = describeZodIssues(schema.safeParse(null).error!);
    expect(root).not.toMatch(/^:/);
    expect(describeZodIssues(z.string().safeParse(1).error!, ['cards', 3])).toEqual([expect.stringMatching(/^cards\[3\]: /)]);
  });
});
