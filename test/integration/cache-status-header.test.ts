/**
 * The `Cardproxy-Cache` header of `/cards`: one entry per requested card, in request order, for
 * every kind of answer (fresh, stale, refreshed, placeholder, error, unknown), bounded in size.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { cacheStatusHeader, CacheStatusHeaders, CACHE_STATUS_MAX_BYTES } from '../../src/http/cache-status.js';
import type { KeyOutcome } from '../../src/service/card-resolver.js';
import { cardsReply } from '../helpers/fake-upstream.js';
import { cardsBody, cleanupProxies, ManualClock, startTestProxy, startTestUpstream, testConfig, type TestProxy } from '../helpers/harness.js';

afterEach(cleanupProxies);

async function cacheStatus(proxy: TestProxy, keys: string[], customerId: string): Promise<string | undefined> {
  const res = await proxy.app.inject({
    method: 'POST',
    url: '/cards',
    headers: { 'content-type': 'application/json', 'plain-workspace-id': 'w_header' },
    payload: JSON.stringify(cardsBody(keys, customerId)),
  });
  expect(res.statusCode).toBe(200);
  return res.headers['cardproxy-cache'] as string | undefined;
}

describe('Cardproxy-Cache header', () => {
  it('says how each card was answered: refreshed, fresh, stale, placeholder, error, unknown', async () => {
    const legacy = await startTestUpstream((call) => ({ body: cardsReply(call) }));
    const clock = new ManualClock();
    const config = testConfig(legacy.url, { budgetMs: 1500, defaults: { ttlSeconds: 60 } });
    const proxy = await startTestProxy(config, 'start', { clock });

    expect(await cacheStatus(proxy, ['beta', 'nope', 'alpha'], 'c_1')).toBe('beta=refreshed; nope=unknown; alpha=refreshed');
    expect(await cacheStatus(proxy, ['alpha', 'beta'], 'c_1')).toBe('alpha=fresh; beta=fresh');
    clock.advance(61_000);
    expect(await cacheStatus(proxy, ['alpha'], 'c_1')).toBe('alpha=stale');

    legacy.setHandler((call) => ({ delayMs: 4000, body: cardsReply(call) }));
    expect(await cacheStatus(proxy, ['alpha'], 'c_2')).toBe('alpha=placeholder');

    legacy.setHandler(() => ({ status: 404 }));
    expect(await cacheStatus(proxy, ['beta'], 'c_3')).toBe('beta=error');
  });

  it(`stays within ${CACHE_STATUS_MAX_BYTES} bytes, counting the cards that do not fit`, () => {
    const keys = Array.from({ length: 25 }, (_, i) => `${String(i).padStart(2, '0')}-${'k'.repeat(100)}`);
    const outcomes: KeyOutcome[] = keys.map((key) => ({ key, result: 'fresh', source: 'cache', ms: 1 }));
    const value = cacheStatusHeader(keys, outcomes);
    expect(value.length).toBeLessThanOrEqual(CACHE_STATUS_MAX_BYTES);
    const entries = value.split('; ');
    const shown = entries.slice(0, -1);
    expect(shown.every((entry, i) => entry === `${keys[i]}=fresh`)).toBe(true);
    expect(entries.at(-1)).toBe(`+${25 - shown.length} more`);
    expect(shown).toHaveLength(9);
    // Short keys all fit, without a count.
    expect(cacheStatusHeader(['a', 'b'], [{ key: 'a', result: 'miss', source: 'placeholder', ms: 1 }, { key: 'b', result: 'negative', source: 'error', ms: 1 }])).toBe('a=placeholder; b=error');
    // A repeated key once, in request order; a key without an outcome left out.
    const mixed: KeyOutcome[] = [
      { key: 'zz', result: 'unknown', source: null, ms: 0 },
      { key: 'b', result: 'stale', source: 'stale', ms: 1 },
      { key: 'a', result: 'fresh', source: 'cache', ms: 1 },
    ];
    expect(cacheStatusHeader(['a', 'b', 'a', 'none', 'zz'], mixed)).toBe('a=fresh; b=stale; zz=unknown');
    // Cards that do not fit are counted, the last one too.
    const long = (c: string) => c.repeat(600);
    const fresh = (keys: string[]): KeyOutcome[] => keys.map((key) => ({ key, result: 'fresh', source: 'cache', ms: 1 }));
    expect(cacheStatusHeader([long('x'), long('y'), long('z')], fresh([long('x'), long('y'), long('z')]))).toBe(`${long('x')}=fresh; +2 more`);
    expect(cacheStatusHeader([long('x'), long('y')], fresh([long('x'), long('y')]))).toBe(`${long('x')}=fresh; +1 more`);
    expect(cacheStatusHeader([long('x').repeat(2)], fresh([long('x').repeat(2)]))).toBe('+1 more');
  });

  it('is the value before while keys and statuses repeat, and a new one as soon as either changes', () => {
    const headers = new CacheStatusHeaders();
    const outcomes = (keys: string[], result: 'fresh' | 'stale', source: 'cache' | 'stale'): KeyOutcome[] => keys.map((key) => ({ key, result, source, ms: 0 }));
    expect(headers.valueFor(['a', 'b'], outcomes(['a', 'b'], 'fresh', 'cache'))).toBe('a=fresh; b=fresh');
    expect(headers.valueFor(['a', 'b'], outcomes(['b', 'a'], 'fresh', 'cache'))).toBe('a=fresh; b=fresh');
    expect(headers.valueFor(['a', 'b'], outcomes(['a', 'b'], 'stale', 'stale'))).toBe('a=stale; b=stale');
    expect(headers.valueFor(['b', 'a'], outcomes(['a', 'b'], 'stale', 'stale'))).toBe('b=stale; a=stale');
    expect(headers.valueFor(['b'], outcomes(['b'], 'stale', 'stale'))).toBe('b=stale');
    expect(headers.valueFor(['b', 'c'], [...outcomes(['b'], 'stale', 'stale'), ...outcomes(['c'], 'fresh', 'cache')])).toBe('b=stale; c=fresh');
    expect(headers.valueFor(['b', 'c'], outcomes(['b', 'c'], 'stale', 'stale'))).toBe('b=stale; c=stale');
  });
});
