import { describe, expect, it } from 'vitest';
import { apiIdentity, isSameApi } from '../../src/core/same-api.js';
import { groupUpstreams } from '../../src/config/upstream-groups.js';
import { parseConfig } from '../../src/config/load.js';

const base = { url: 'https://api.example.com/cards', headers: { Authorization: 'Bearer my-token' }, signingSecret: null };

describe('apiIdentity: Plain\'s request de-duplication rule', () => {
  it('trims the URL and compares it case-sensitively', () => {
    expect(apiIdentity({ ...base, url: '  https://api.example.com/cards  ' })).toBe(apiIdentity(base));
    expect(apiIdentity({ ...base, url: 'https://api.example.com/cards/' })).not.toBe(apiIdentity(base));
    expect(apiIdentity({ ...base, url: 'https://api.example.com/Cards' })).not.toBe(apiIdentity(base));
  });

  it('treats header names as the same after trimming, case-insensitively', () => {
    for (const name of ['Authorization', 'AUTHORIZATION', '   authorization   ']) {
      expect(apiIdentity({ ...base, headers: { [name]: 'Bearer my-token' } })).toBe(apiIdentity(base));
    }
    expect(apiIdentity({ ...base, headers: { 'X-Authorization': 'Bearer my-token' } })).not.toBe(apiIdentity(base));
  });

  it('compares header values as-is', () => {
    for (const value of ['bearer my-token', '   bearer my-token   ', ' Bearer my-token', 'Bearer my-token ']) {
      expect(apiIdentity({ ...base, headers: { Authorization: value } })).not.toBe(apiIdentity(base));
    }
  });

  it('ignores header order', () => {
    const a = { ...base, headers: { Authorization: 'Bearer t', 'X-Tenant': 'acme', Accept: 'application/json' } };
    const b = { ...base, headers: { 'x-tenant': 'acme', accept: 'application/json', ' AUTHORIZATION ': 'Bearer t' } };
    expect(apiIdentity(a)).toBe(apiIdentity(b));
    expect(isSameApi(a, b)).toBe(true);
  });

  it('a missing or extra header makes a different API', () => {
    expect(apiIdentity({ ...base, headers: {} })).not.toBe(apiIdentity(base));
    expect(apiIdentity({ ...base, headers: { ...base.headers, 'X-Extra': '1' } })).not.toBe(apiIdentity(base));
  });

  it('requires the same signing secret (cardproxy signs the body)', () => {
    expect(apiIdentity({ ...base, signingSecret: 's1' })).not.toBe(apiIdentity(base));
    expect(apiIdentity({ ...base, signingSecret: 's1' })).not.toBe(apiIdentity({ ...base, signingSecret: 's2' }));
    expect(apiIdentity({ ...base, signingSecret: 's1' })).toBe(apiIdentity({ ...base, signingSecret: 's1' }));
    expect(apiIdentity({ url: base.url, headers: base.headers })).toBe(apiIdentity(base));
  });

  it('cannot be fooled by separators inside values', () => {
    const a = { url: 'u', headers: { a: 'b","c' } };
    const b = { url: 'u', headers: { a: 'b', c: '' } };
    expect(apiIdentity(a)).not.toBe(apiIdentity(b));
  });
});

describe('groupUpstreams', () => {
  const config = parseConfig(
    {
      upstreams: {
        billing: { url: 'https://billing.example/cards', headers: { Authorization: 'Bearer b' }, timeoutMs: 20000, concurrency: 8, retries: 0, retryDelayMs: 500 },
        crm: { url: 'https://crm.example/cards' },
        'billing-slow': { url: ' https://billing.example/cards ', headers: { ' AUTHORIZATION ': 'Bearer b' }, timeoutMs: 60000, concurrency: 2, retries: 3, retryDelayMs: 2000 },
        'billing-lower': { url: 'https://billing.example/cards', headers: { Authorization: 'bearer b' } },
        'billing-slash': { url: 'https://billing.example/cards/', headers: { Authorization: 'Bearer b' } },
      },
      cards: { invoices: { upstream: 'billing' } },
    },
    {},
  );
  const { groups, groupOf } = groupUpstreams(config);

  it('groups the same APIs together, in config order, named after the first', () => {
    expect(groups.map((group) => group.upstreamNames)).toEqual([['billing', 'billing-slow'], ['crm'], ['billing-lower'], ['billing-slash']]);
    expect(groups.map((group) => group.name)).toEqual(['billing', 'crm', 'billing-lower', 'billing-slash']);
    expect(groupOf('billing-slow')).toBe(groupOf('billing'));
    expect(groupOf('billing-lower')).not.toBe(groupOf('billing'));
  });

  it('merges settings: min concurrency, max timeout, max retries and retry delay', () => {
    expect(groupOf('billing-slow')).toEqual({
      name: 'billing',
      upstreamNames: ['billing', 'billing-slow'],
      url: 'https://billing.example/cards',
      headers: { Authorization: 'Bearer b' },
      timeoutMs: 60000,
      concurrency: 2,
      retries: 3,
      retryDelayMs: 2000,
      signingSecret: null,
    });
    expect(groupOf('crm')).toMatchObject({ name: 'crm', timeoutMs: 30000, concurrency: 4, retries: 1, retryDelayMs: 1000 });
  });

  it('keeps the first spelling of header names, trimmed, and trims the URL', () => {
    const reversed = groupUpstreams({
      upstreams: {
        a: { url: ' https://x.example/c ', headers: { ' x-KEY ': 'v' }, timeoutMs: 100, concurrency: 1, retries: 0, retryDelayMs: 0, signingSecret: 's' },
        b: { url: 'https://x.example/c', headers: { 'X-Key': 'v' }, timeoutMs: 100, concurrency: 1, retries: 0, retryDelayMs: 0, signingSecret: 's' },
      },
    });
    expect(reversed.groups).toHaveLength(1);
    expect(reversed.groups[0]).toMatchObject({ name: 'a', url: 'https://x.example/c', headers: { 'x-KEY': 'v' }, signingSecret: 's' });
  });

  it('is frozen and throws for an unknown upstream', () => {
    expect(Object.isFrozen(groups)).toBe(true);
    expect(Object.isFrozen(groups[0])).toBe(true);
    expect(() => groupOf('nope')).toThrow(/unknown upstream "nope"/);
  });
});
